"""IntentCues (bot/components/intent_cues.py) with the cues of config.yml, in the Rasa environment
(a subprocess under .venv-rasa, as tests/test_nlu_components.py does): a refund asked for against
the status of one asked for, in en, ru and zh."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import run_in_rasa

pytestmark = pytest.mark.rasa

CHECK = """
import json, sys, yaml
from rasa.shared.nlu.training_data.message import Message
from bot.components.intent_cues import IntentCues
config = next(c for c in yaml.safe_load(open("config.yml"))["pipeline"] if c["name"].endswith("IntentCues"))
cues = IntentCues(config)
out = {}
for text, top in json.loads(sys.argv[1]):
    other = "refund_status" if top == "request_refund" else "request_refund"
    m = Message(data={"text": text, "intent": {"name": top, "confidence": 0.7},
                      "intent_ranking": [{"name": top, "confidence": 0.7}, {"name": "return_item", "confidence": 0.2},
                                         {"name": other, "confidence": 0.1}]})
    cues.process([m])
    out[text] = {"intent": m.get("intent"), "ranking": m.get("intent_ranking")}
try:
    IntentCues({"pairs": [{"a": ["("], "b": []}]})
except ValueError as e:
    out["bad pattern"] = str(e)
print("RESULT " + json.dumps(out, ensure_ascii=False))
"""

CASES = [
    ("did you ever pay back my refund", "request_refund", "refund_status"),
    ("мне вернули деньги за ботинки?", "request_refund", "refund_status"),
    ("7916676427 aphoenix939@email.com 退款到账了吗", "request_refund", "refund_status"),
    ("can I still get a refund on 5120648393, bought it ages ago", "refund_status", "request_refund"),
    ("хочу вернуть деньги за куртку", "refund_status", "request_refund"),
    ("我要退款", "refund_status", "request_refund"),
    ("i want a refund", "request_refund", "request_refund"),  # its own cue: unchanged
    ("where is my refund? i want my money back", "request_refund", "request_refund"),  # both cues: unchanged
    ("the jacket is too small", "request_refund", "request_refund"),  # no cue: unchanged
]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    proc = run_in_rasa(["-c", CHECK, json.dumps([[text, top] for text, top, _ in CASES])])
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stderr[-3000:]
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize(("text", "top", "expected"), CASES)
def test_the_cue_of_the_other_intent_alone_changes_the_top_intent(
    results: dict[str, Any], text: str, top: str, expected: str
) -> None:
    got = results[text]
    assert got["intent"]["name"] == expected
    ranking = got["ranking"]
    assert ranking[0]["name"] == expected and ranking[0]["confidence"] == 0.7
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True) and len(ranking) == 3
    if expected != top:
        assert got["intent"]["cued_from"] == top


def test_a_bad_cue_pattern_is_a_clear_error(results: dict[str, Any]) -> None:
    assert "IntentCues: bad cue pattern" in results["bad pattern"]
