"""Start-up of the command line: one complaint from a fresh process.

    python -m bench.startup [--runs 5]

Prints the wall time (median of --runs fresh processes) of ``complaints classify-text`` and of
``complaints classify`` on a one-row file, with the CPU time they used (user + system: what the wall time
is on an idle core — the machine is shared, so the wall time says as much about the others' load), where
the time goes inside one classify-text process (imports, model load, first classification), and the ten
packages whose imports cost most (``python -X importtime``, self time summed per top-level package).
Figures are printed, not asserted.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TEXT = "快递员态度很差，还把包裹扔在门口，打客服电话也没人接"
COMPLAINTS = [str(Path(sys.executable).with_name("complaints"))]
# One classify-text run inside one process, timed per stage (the CLI's own path, printed to stderr).
STAGES = f"""
import sys, time
started = time.perf_counter()
def lap(name):
    global started
    now = time.perf_counter(); print(f"{{name}}\\t{{now - started:.3f}}", file=sys.stderr); started = now
from pipeline.cli import app
lap("import the command line")
from pipeline.config import load_settings
from pipeline.model.classify import classify_texts, load_model
lap("import the classifier")
model = load_model(load_settings(None))
lap("load the model (sha256, unpickle)")
classify_texts(model, [{TEXT!r}])
lap("first classification (segmenter start, explanation)")
classify_texts(model, [{TEXT!r}])
lap("second classification")
"""


def run_times(command: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of ``runs`` fresh processes."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def stage_times(runs: int) -> dict[str, float]:
    laps: dict[str, list[float]] = {}
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", STAGES], check=True, capture_output=True, text=True)
        for line in done.stderr.splitlines():
            if "\t" in line:
                name, seconds = line.rsplit("\t", 1)
                laps.setdefault(name, []).append(float(seconds))
    return {name: statistics.median(values) for name, values in laps.items()}


def import_breakdown(top: int = 10) -> tuple[float, list[tuple[str, float]]]:
    """Self import time per top-level package (seconds) of one classify-text process, and the total."""
    script = f"import sys; sys.argv = ['complaints', 'classify-text', {TEXT!r}]; from pipeline.cli import main; main()"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", script], capture_output=True, text=True)
    per_package: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|(\s*)(\S+)", line)
        if match:
            per_package[match.group(3).split(".")[0]] += int(match.group(1)) / 1e6
    return sum(per_package.values()), per_package.most_common(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as folder:
        one_row = Path(folder) / "one.csv"
        one_row.write_text(f"id,text\nc1,{TEXT}\n", encoding="utf-8")
        commands = {
            "complaints classify-text": COMPLAINTS + ["classify-text", TEXT],
            "complaints classify (1 row)": COMPLAINTS + ["classify", "--input", str(one_row),
                                                         "--output", str(Path(folder) / "out.csv")],
        }
        print(f"| command | wall, median of {args.runs} fresh processes, s | min | max | CPU (user + system), median, s |")
        print("|---|---|---|---|---|")
        for name, command in commands.items():
            walls, cpus = run_times(command, args.runs)
            print(f"| {name} | {statistics.median(walls):.2f} | {min(walls):.2f} | {max(walls):.2f} | "
                  f"{statistics.median(cpus):.2f} |")
    print(f"\nInside one classify-text process (median of {args.runs}):\n")
    print("| stage | seconds |")
    print("|---|---|")
    for name, seconds in stage_times(args.runs).items():
        print(f"| {name} | {seconds:.3f} |")
    total, packages = import_breakdown()
    print(f"\nImports of one classify-text process: {total:.2f} s in all (-X importtime, self time per package):\n")
    print("| package | seconds |")
    print("|---|---|")
    for package, seconds in packages:
        print(f"| {package} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
