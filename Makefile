# Each target sets itself up: a fresh clone needs only python3 (3.11) and the package registry.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export PREFECT_HOME := $(CURDIR)/var/prefect-home

.PHONY: demo test test-fast install data train bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The demo writes to the default work directory (var/), where every later command looks without a flag.
demo: $(STAMP)
	mkdir -p $(PREFECT_HOME)
	$(BIN)/complaints run data/samples/complaints_sample.csv
	@# what the teams might have reported back, so the report's recovery section has something to show
	$(BIN)/complaints data demo-updates --output var/demo-ticket-updates.csv
	$(BIN)/complaints tickets update --file var/demo-ticket-updates.csv
	$(BIN)/complaints trends

# The report test opens the HTML in a real headless chromium (CI runs as root on a fresh machine), with the
# CJK fonts a server needs to draw Chinese (without them every character is an empty box). The store tests
# start Debian's PostgreSQL 15 themselves (tests/postgres_server.py).
test: $(STAMP)
	mkdir -p $(PREFECT_HOME)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	command -v /usr/lib/postgresql/15/bin/pg_ctl >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk)
	$(BIN)/python -m pytest -q

# The fast lane while you work: no Prefect server, no browser, no training (well under a minute).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not flow and not browser and not slow"

data: $(STAMP)
	$(BIN)/complaints data build

train: $(STAMP)
	$(BIN)/python -m bench.train_default

bench: $(STAMP)
	$(BIN)/python -m bench.throughput

clean:
	rm -rf var .pytest_cache
