"""Rasa 3.6 hot spots fixed in our own process, without changing what Rasa does.

Applied by ``bot/rasa_serve.py`` before Rasa starts (every Rasa we run, embedded or replica).

- ``RemoteAction._validate_action_result`` called ``jsonschema.validate(result, schema)`` for every
  action server answer, and ``validate`` checks the *schema* against the metaschema each time before
  checking the answer: a fifth of a Rasa server's CPU under load went to that check (py-spy,
  bench/RESULTS.md "Scale-out"). The schema is Rasa's own constant, so it is checked once and one
  validator is kept; answers are validated exactly as before (the same error, ``best_match`` of the
  same errors, with Rasa's hint appended).
- ``Event.resolve_by_type`` walked every subclass of ``Event`` for each event read back from the
  tracker store (every event of a conversation, on every turn): 3-4% of Rasa's CPU. The walk's
  result is kept by type name and walked again only for a name it did not have (an event class
  defined later), so the answer is the same.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _action_result_validator() -> Any:
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)  # once, as jsonschema.validate did on every call
    return cls(schema)


def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    from jsonschema import exceptions
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    if type(self).action_response_format_spec is not RemoteAction.action_response_format_spec:
        return _ORIGINAL["validate"](self, result)  # a subclass with a schema of its own
    error = exceptions.best_match(_action_result_validator().iter_errors(result))
    if error is not None:
        error.message += (
            ". Failed to validate Action server response from API, make sure your response from the Action "
            f"endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error
    return True


_EVENT_TYPES: dict[str, Any] = {}


def resolve_event_type(type_name: str, default: Any = None) -> Any:
    if type_name not in _EVENT_TYPES:
        from rasa.shared.core.events import Event
        from rasa.shared.utils.common import all_subclasses

        for cls in all_subclasses(Event):  # first match wins, as in Rasa's own walk
            _EVENT_TYPES.setdefault(cls.type_name, cls)
        if type_name not in _EVENT_TYPES:
            return _ORIGINAL["resolve"](type_name, default)  # Rasa's own answer: None, the default or its error
    return _EVENT_TYPES[type_name]


_ORIGINAL: dict[str, Any] = {}


def apply() -> None:
    """Install the fixes (idempotent)."""
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.events import Event

    if "validate" not in _ORIGINAL:
        _ORIGINAL["validate"] = RemoteAction._validate_action_result
        RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]
    if "resolve" not in _ORIGINAL:
        _ORIGINAL["resolve"] = Event.resolve_by_type
        Event.resolve_by_type = staticmethod(resolve_event_type)  # type: ignore[method-assign]
