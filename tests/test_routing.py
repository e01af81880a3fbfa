"""Routing rules and the remedy catalogue: every label a model can emit lands in a queue with a remedy,
overrides apply by any metadata column, and a malformed rules file stops start-up naming key and reason."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from pipeline.model.classify import classify_texts, load_lexicon_model, load_trained_model
from pipeline.config import DATA_DIR, ConfigError
from pipeline.routing.router import Router
from pipeline.model.cause_model import build_pipeline
from pipeline.model.registry import save_artifact
from pipeline.labels import CAUSES, NONE_LABEL

ROUTING = DATA_DIR / "routing" / "routing.toml"
REMEDIES = DATA_DIR / "routing" / "remedies.toml"


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_files(ROUTING, REMEDIES)


def test_every_cause_has_its_own_route_and_remedy(router):
    codes = set()
    for cause in CAUSES:
        decision = router.route_for_cause(cause)
        assert cause in router.rules.routes, f"{cause} has no route of its own"
        assert decision.queue not in (router.rules.fallback.queue, router.rules.review.queue)
        assert decision.remedy is router.remedies[cause]
        assert decision.remedy.immediate and decision.remedy.preventive and decision.remedy.owner_role
        assert decision.remedy.title_zh and decision.remedy.title_en
        codes.add(decision.remedy.code)
    assert len(codes) == len(CAUSES)


def test_none_and_needs_review_go_to_manual_review(router):
    assert router.route_for_cause(NONE_LABEL).queue == "manual-review"
    assert router.route_for_cause(NONE_LABEL).remedy.code == "RS-REV"
    flagged = router.route_for_cause("technology", needs_review=True)
    assert flagged.queue == "manual-review"
    assert flagged.remedy.code == "RS-TEC"  # the likely cause's remedy still guides the reviewer


def test_every_label_the_lexicon_model_emits_is_routed(router, settings):
    model = load_lexicon_model(settings.lexicon_path)
    assert set(model.labels) == set(CAUSES) | {NONE_LABEL}
    texts = ["服务员态度很差", "排队两小时没人管", "空调坏了", "乱收费", "我自己记错了时间", "台风航班取消", "今天天气不错"]
    emitted = set(classify_texts(model, texts)["cause"])
    for label in set(model.labels) | emitted:
        decision = router.route_for_cause(label)
        assert decision.queue and decision.remedy.code


def test_a_custom_trained_models_own_labels_take_the_fallback_route(router, tmp_path):
    rows = [("发票开错了抬头", "billing"), ("多扣了我一笔钱", "billing"), ("账单金额不对", "billing"),
            ("退款一直没到账", "billing"), ("快递三天还没到", "delivery"), ("包裹被放错了驿站", "delivery"),
            ("配送员把箱子摔坏了", "delivery"), ("物流信息一直不更新", "delivery"),
            ("服务员态度很差", "personnel"), ("店员说话很冲", "personnel"), ("前台爱理不理", "personnel"),
            ("客服骂人", "personnel")]
    frame = pd.DataFrame(rows, columns=["text", "label"])
    fitted = build_pipeline(feature_set="chars", estimator="cnb").fit(frame["text"].tolist(), frame["label"])
    save_artifact(fitted, {"name": "custom-test", "labels": sorted(set(frame["label"]))}, tmp_path / "custom")
    model = load_trained_model(tmp_path / "custom")
    assert set(model.labels) == {"billing", "delivery", "personnel"}
    emitted = set(classify_texts(model, frame["text"].tolist() + ["账单多扣钱", "快递没到"])["cause"])
    assert emitted & {"billing", "delivery"}
    for label in set(model.labels) | emitted:
        decision = router.route_for_cause(label)
        if label in router.rules.routes:
            assert decision.queue == router.rules.routes[label].queue
        else:
            assert decision.queue == router.rules.fallback.queue == "triage"
            assert decision.remedy.code == "RS-REV"


def _write_routing(tmp_path: Path, extra: str = "", replace: tuple[str, str] | None = None) -> Path:
    text = ROUTING.read_text(encoding="utf-8")
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    path = tmp_path / "routing.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def test_overrides_match_channel_store_or_any_metadata_column(tmp_path):
    path = _write_routing(tmp_path, extra='\n[[overrides]]\nmatch = { store = "上海浦东店", product = "会员卡" }\n'
                                           'cause = "management"\nqueue = "shanghai-membership"\nsla_hours = 8\n')
    router = Router.from_files(path, REMEDIES)
    both = {"channel": "app", "store": "上海浦东店", "product": "会员卡"}
    assert router.route_for_cause("management", fields=both).queue == "shanghai-membership"
    assert router.route_for_cause("management", fields=both).sla_hours == 8
    assert router.route_for_cause("management", fields={**both, "product": "储值"}).queue == "management-office"
    assert router.route_for_cause("personnel", fields=both).queue == "service-quality"  # limited to management
    hotline = router.route_for_cause("customer", fields={"channel": "12315"})
    assert (hotline.queue, hotline.sla_hours, hotline.priority) == ("customer-care", 12, 1)


MALFORMED = [
    ("negative SLA", {"replace": ("sla_hours = 24\npriority = 2\n\n[routes.process]",
                                  "sla_hours = -5\npriority = 2\n\n[routes.process]")},
     "routes.personnel.sla_hours", "greater than 0"),
    ("misspelt key", {"replace": ("[routes.process]\nqueue", "[routes.process]\nqeue")},
     "routes.process.qeue", "Extra inputs are not permitted"),
    ("priority out of range", {"replace": ("priority = 4", "priority = 9")}, "routes.customer.priority",
     "less than or equal to 4"),
    ("no review route", {"replace": ('[review]\nqueue = "manual-review"\nsla_hours = 24\npriority = 3\n', "")},
     "review", "Field required"),
    ("override changes nothing", {"extra": '\n[[overrides]]\nmatch = { store = "A" }\n'}, "overrides.1",
     "sets none of queue, sla_hours, priority"),
    ("not TOML", {"extra": "\n[routes.broken\n"}, "not valid TOML", "line"),
]


@pytest.mark.parametrize("case, change, key, reason", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_a_malformed_routing_file_names_file_key_and_reason(tmp_path, case, change, key, reason):
    path = _write_routing(tmp_path, **change)
    with pytest.raises(ConfigError) as error:
        Router.from_files(path, REMEDIES)
    message = str(error.value)
    assert str(path) in message and key in message and reason in message


def test_remedy_catalogue_errors_name_the_cause(tmp_path):
    remedies = tomllib.loads(REMEDIES.read_text(encoding="utf-8"))
    duplicate = REMEDIES.read_text(encoding="utf-8").replace('code = "RS-PRO"', 'code = "RS-PER"')
    path = tmp_path / "remedies.toml"
    path.write_text(duplicate, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[process\]\.code: 'RS-PER' is already the code of \[personnel\]"):
        Router.from_files(ROUTING, path)
    assert remedies["personnel"]["code"] == "RS-PER"
    without_steps = REMEDIES.read_text(encoding="utf-8").replace('owner_role = "quality analyst"\n', "")
    path.write_text(without_steps, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"owner_role: Field required"):
        Router.from_files(ROUTING, path)


@pytest.mark.slow
def test_the_cli_stops_at_start_up_on_a_malformed_routing_file(tmp_path):
    routing = _write_routing(tmp_path, replace=("priority = 4", 'priority = "urgent"'))
    config = tmp_path / "settings.toml"
    config.write_text(f'work_dir = "{(tmp_path / "work").as_posix()}"\nclassifier = "lexicon"\n'
                      f'routing_path = "{routing.as_posix()}"\n', encoding="utf-8")
    source = tmp_path / "in.csv"
    source.write_text("id,text\n1,服务员态度很差\n", encoding="utf-8")
    complaints = Path(sys.executable).parent / "complaints"
    result = subprocess.run([str(complaints), "run", str(source), "--config", str(config)],
                            capture_output=True, text=True, timeout=120,
                            env={"COLUMNS": "300", "PATH": str(complaints.parent)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and "routes.customer.priority" in lines[0]
    assert "valid integer" in lines[0] and str(routing) in lines[0]
    assert not (tmp_path / "work" / "complaints.db").exists()  # nothing ran
