"""bot/rasa_patches.py, run in Rasa's own environment: the action server's answers are validated
exactly as Rasa 3.6 does (same acceptances, same error and message), with the schema checked once."""

from __future__ import annotations

import json

from tests.conftest import run_in_rasa

CHECK = """
import json, sys
from unittest import mock
import jsonschema
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.utils.endpoints import EndpointConfig
from bot import rasa_patches

action = RemoteAction("action_x", EndpointConfig("http://127.0.0.1:1"))
def outcome(validate):
    out = []
    for answer in json.loads(sys.argv[1]):
        try:
            out.append(["ok", validate(action, answer)])
        except ValidationError as e:
            out.append(["error", e.message])
    return out

before = outcome(RemoteAction._validate_action_result)
rasa_patches.apply(); rasa_patches.apply()  # idempotent
patched = RemoteAction._validate_action_result
cls = jsonschema.validators.validator_for(RemoteAction.action_response_format_spec())
with mock.patch.object(cls, "check_schema", wraps=cls.check_schema) as checks:
    after = outcome(patched)
    outcome(patched)

class OwnSchema(RemoteAction):
    @staticmethod
    def action_response_format_spec():
        return {"type": "object", "required": ["custom"]}

own = []
try:
    OwnSchema("action_y", EndpointConfig("http://127.0.0.1:1"))._validate_action_result({"events": []})
except ValidationError as e:
    own.append(e.message)
from rasa.shared.core.events import Event, UserUttered
from rasa.shared.utils.common import all_subclasses
original = rasa_patches._ORIGINAL["resolve"]
def resolved(resolve, name, *default):
    try:
        return getattr(resolve(name, *default), "__name__", None)
    except ValueError as e:
        return "error: " + str(e)
names = sorted({cls.type_name for cls in all_subclasses(Event)}) + ["topic", "no_such_event"]
events = {"same": [resolved(Event.resolve_by_type, n) == resolved(original, n) for n in names],
          "default": resolved(Event.resolve_by_type, "no_such_event", UserUttered),
          "unknown": resolved(Event.resolve_by_type, "no_such_event"),
          "n": len(names)}
class LaterEvent(UserUttered):
    type_name = "later_event"
events["later"] = resolved(Event.resolve_by_type, "later_event")
print(json.dumps({"before": before, "after": after, "schema_checks": checks.call_count, "own": own,
                  "patched": patched is rasa_patches.validate_action_result, "events": events}))
"""

ANSWERS = [
    {"events": [{"event": "slot", "name": "order_id", "value": "5120648393"}], "responses": [{"text": "hi"}]},
    {"events": [], "responses": []},
    {},
    {"events": "not a list", "responses": []},
    {"events": [{"event": 3}], "responses": []},
    {"events": [], "responses": "nope"},
]


def test_action_answers_are_judged_as_rasa_does_with_the_schema_checked_once() -> None:
    proc = run_in_rasa(["-c", CHECK, json.dumps(ANSWERS)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["patched"]
    assert got["after"] == got["before"]
    assert [kind for kind, _ in got["before"]] == ["ok", "ok", "ok", "error", "error", "error"]
    assert all("Failed to validate Action server response" in msg for kind, msg in got["after"] if kind == "error")
    assert got["schema_checks"] == 1  # once for 12 answers (Rasa checked it for each)
    assert got["own"] and "custom" in got["own"][0]  # a subclass's own schema still applies


def test_event_types_resolve_as_rasa_resolves_them() -> None:
    proc = run_in_rasa(["-c", CHECK, json.dumps(ANSWERS)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = json.loads(proc.stdout.strip().splitlines()[-1])["events"]
    assert events["n"] > 20 and all(events["same"])  # every event type, "topic" (None) and an unknown name
    assert events["default"] == "UserUttered"
    assert events["unknown"] == "error: Unknown event name 'no_such_event'."
    assert events["later"] == "LaterEvent"  # a class defined after the first lookups is still found
