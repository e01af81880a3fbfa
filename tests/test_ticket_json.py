"""The ticket's stored text is byte for byte what main's ``build_ticket`` stored (``batch_reference``: the
payload one dict encoded whole, its times through pandas), however the faster code splices and formats it."""
import itertools
import json
from datetime import datetime

import pytest

from batch_reference import reference_build_ticket
from pipeline.routing.router import Remedy, RoutingDecision
from pipeline.tickets.build import build_ticket, encode_remedy
from pipeline.tickets.sla import SlaClock, SlaRules

NOW = datetime(2026, 11, 29, 6, 30, 15, 123456)
REMEDIES = [
    Remedy(code="RS-PRO", title_zh="流程失误补救：加急处理", title_en='Process "failure"', owner_role="ops \\ lead",
           immediate=["指定专人负责到底", "tab\there, newline\nthere"], preventive=["绘制服务流程图 / 复盘"]),
    Remedy(code="RS-\u2028", title_zh="", title_en="\x00\x1f control", owner_role="é", immediate=["😀 emoji"],
           preventive=["\ud800 lone surrogate"]),
]
REASONS = [[], ["repeat_customer: 30 天内第 3 次投诉"], ['said "12315" \\ 媒体曝光', "line\nbreak", "</script>"]]
COMPLAINTS = [  # created_at, channel, customer_key, masked text
    (datetime(2026, 11, 28, 23, 59, 59, 999999), "app", "cust-1f2e", "服务员态度很差，电话 [PHONE]"),
    (None, None, None, ""),
    (datetime(1999, 3, 28, 1, 30), 'we"b\\', "客户", "a \"quoted\" \\ text\u2028with\tcontrols\x7f"),
]
PREDICTIONS = [  # cause, confidence, needs_review, secondary causes, explanation
    ("process", 0.9045, False, "", "不干净、很脏"),
    ("none", float("nan"), True, "personnel|technology", None),
    ("人员", 1e-20, 1, "|process|", 'the "why" \\'),
]
PROBABILITIES = [{"customer": 0.0015, "process": 0.9045}, {"a": 0.1 + 0.2, "b": float("inf"), "c": 1e16},
                 {"人员": 0.5, "流程": float("-inf"), "x": -0.0}, {}]


@pytest.mark.parametrize("timezone", ["Asia/Shanghai", "Europe/Berlin", "UTC", "America/St_Johns"])
def test_the_ticket_is_stored_as_main_built_it(timezone):
    clock = SlaClock(SlaRules(queues={"service": {"business_hours": True}}), timezone)
    cases = itertools.product(REMEDIES, REASONS, COMPLAINTS, PREDICTIONS, PROBABILITIES, ("service", "ops"))
    for remedy, reasons, (created, channel, customer, text), prediction, probabilities, queue in cases:
        complaint = {"complaint_id": f'C-"{created}"', "text_masked": text, "created_at": created,
                     "channel": channel, "customer_key": customer}
        cause, confidence, review, secondary, explanation = prediction
        prediction = {"cause": cause, "confidence": confidence, "needs_review": review,
                      "secondary_causes": secondary, "explanation": explanation}
        decision = RoutingDecision(cause=cause, queue=queue, sla_hours=30.5, priority=2, remedy=remedy)
        shared = dict(complaint=complaint, prediction=prediction, decision=decision, model_version="m-1",
                      probabilities=probabilities, escalation_reasons=reasons, escalation_steps=reasons[:1],
                      created_at=NOW, run_id="r", clock=clock)
        expected = reference_build_ticket(**shared)
        assert build_ticket(**shared) == expected
        spliced = build_ticket(**shared, remedy_json=encode_remedy(remedy),
                               probabilities_json=json.dumps(probabilities, ensure_ascii=False))
        assert spliced == expected
        assert list(json.loads(spliced["payload_json"])) == list(json.loads(expected["payload_json"]))
