"""The gateway channel's corrections of a parse, run in Rasa's own environment (bot/gateway_channel.py):
the task a request of a several-request message was read as, and a reason typed at a reason step."""

from __future__ import annotations

import json

from tests.conftest import run_in_rasa

CHECK = """
import json, sys
from bot.gateway_channel import as_the_reason, with_planned_task
out = []
for kind, text, intent, a, b, *confidence in json.loads(sys.argv[1]):
    c = confidence[0] if confidence else 0.7
    parse = {"text": text, "intent": {"name": intent, "confidence": c},
             "intent_ranking": [{"name": intent, "confidence": c}], "entities": [{"entity": "email"}]}
    got = with_planned_task(parse, a) if kind == "task" else as_the_reason(parse, a, b)
    out.append(None if got is None else [got["intent"]["name"], got["intent_ranking"][0]["name"], len(got["entities"])])
print(json.dumps(out))
"""

CASES = [
    # a request naming an order but no task, read as a bare detail: the planned task
    (["task", "帮我看下订单7367089080的情况 a@b.co", "inform", "check_order_status", None], ["check_order_status", "check_order_status", 1]),
    # the NLU read a task itself: its own reading stays
    (["task", "cancel 7367089080", "cancel_order", "check_order_status", None], None),
    (["task", "/affirm", "affirm", "cancel_order", None], None),  # a button is never re-read
    (["task", "hello", "inform", "delete_account", None], None),  # not a task the gateway plans
    # another task the NLU is unsure of: the planned one; a sure one stays
    (["task", "что там с заказом 5176054323, ещё не отправили?", "change_shipping_address", "check_order_status", None, 0.36],
     ["check_order_status", "check_order_status", 1]),
    (["task", "change the address on 5176054323", "change_shipping_address", "check_order_status", None, 0.8], None),
    # asked why, a statement the NLU could not place is the reason
    (["reason", "брак, не работает молния", "out_of_scope", "refund_form", "refund_reason"], ["inform", "inform", 1]),
    (["reason", "條裙啲線甩晒 着咗一次就咁", "nlu_fallback", "return_form", "return_reason"], ["inform", "inform", 1]),
    (["reason", "do you sell these in a bigger size?", "out_of_scope", "return_form", "return_reason"], None),  # a question
    (["reason", "брак, не работает молния", "out_of_scope", "refund_form", "refund_method"], None),  # not the reason step
    (["reason", "what's the weather", "out_of_scope", None, None], None),
]


def test_the_channel_corrects_a_parse_only_where_the_dialogue_says_what_was_asked() -> None:
    proc = run_in_rasa(["-c", CHECK, json.dumps([case for case, _ in CASES])])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [expected for _, expected in CASES]
