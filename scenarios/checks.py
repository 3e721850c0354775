"""The checks a turn may expect, each with its parser (load time) and its evaluation (run time).

A check's parser turns the YAML value into a normal form and raises ``ValueError`` with a message
for the author when the value cannot mean anything (the loader adds file and line). Evaluation
compares that normal form with an ``Observation`` and says what it got, so that a failure reads
as "expected X, got Y".

Text comparisons are case-insensitive substring tests over the text of all messages of the reply
(what the customer reads), never over button titles; ``text_matches`` is a regular expression
searched in that same text. ``button_titles`` looks at the titles only; ``script`` at everything the
customer reads (``scenarios.script``). Action names (``actions``, ``not_actions``) must be actions,
forms or responses of ``bot/domain.yml`` or Rasa's own actions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from scenarios import script
from scenarios.model import LANGUAGES, MESSAGE_TYPES, STATES
from scenarios.observed import Observation

NO_TURN = "nothing recorded for this message in the conversation store"
DOMAIN = Path(__file__).resolve().parent.parent / "bot" / "domain.yml"
# Rasa's built-in actions (rasa.shared.core.constants.DEFAULT_ACTION_NAMES): they appear in ``turns.actions``.
RASA_ACTIONS = frozenset({
    "action_listen", "action_restart", "action_session_start", "action_default_fallback", "action_deactivate_loop",
    "action_revert_fallback_events", "action_default_ask_affirmation", "action_default_ask_rephrase",
    "action_two_stage_fallback", "action_unlikely_intent", "action_back", "action_extract_slots",
})


@dataclass(frozen=True)
class Verdict:
    ok: bool
    got: Any


@dataclass(frozen=True)
class CheckSpec:
    key: str
    doc: str
    parse: Callable[[Any], Any]
    evaluate: Callable[[Any, Observation], Verdict]


# --- parsers ------------------------------------------------------------------------------------


def _strings(value: Any, what: str, allowed: Sequence[str] | None = None) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"{what} must be a non-empty string or a list of non-empty strings")
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise ValueError(f"{what}: unknown value {bad[0]!r}; one of {', '.join(allowed)}")
    return tuple(items)


def _one_of(allowed: Sequence[str], what: str) -> Callable[[Any], tuple[str, ...]]:
    return lambda value: _strings(value, what, allowed)


def _any_strings(what: str) -> Callable[[Any], tuple[str, ...]]:
    return lambda value: _strings(value, what)


@lru_cache(maxsize=1)
def known_actions() -> frozenset[str] | None:
    """Every name ``turns.actions`` can hold: the domain's actions, forms and responses, and Rasa's
    own; None when there is no domain to check against (then any name is accepted)."""
    try:
        domain = yaml.safe_load(DOMAIN.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    names = [*(domain.get("actions") or []), *(domain.get("forms") or {}), *(domain.get("responses") or {})]
    return frozenset(str(n) for n in names) | RASA_ACTIONS


def _action_names(what: str) -> Callable[[Any], tuple[str, ...]]:
    def parse(value: Any) -> tuple[str, ...]:
        names = _strings(value, what)
        known = known_actions()
        unknown = [n for n in names if known is not None and n not in known]
        if unknown:
            raise ValueError(f"{what}: unknown action {unknown[0]!r} (not an action, form or response of bot/domain.yml)")
        return names
    return parse


def _parse_script(value: Any) -> str:
    if value not in script.SCRIPTS:
        raise ValueError(f"script must be one of {', '.join(script.SCRIPTS)}")
    return str(value)


def _scalar_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _parse_entities(value: Any) -> dict[str, str | None]:
    """``[order_id, email]`` (present, any value) or ``{order_id: "3348917502", email: null}``."""
    if isinstance(value, list):
        names = _strings(value, "entities")
        return dict.fromkeys(names)
    if isinstance(value, Mapping) and value:
        if not all(isinstance(k, str) and _scalar_or_none(v) for k, v in value.items()):
            raise ValueError("entities: each value must be a scalar (or null for 'any value')")
        return {k: (None if v is None else str(v)) for k, v in value.items()}
    raise ValueError("entities must be a list of entity names or a mapping entity → value")


def _parse_slots(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError("slots must be a non-empty mapping slot → value")
    if not all(isinstance(k, str) and _scalar_or_none(v) for k, v in value.items()):
        raise ValueError("slots: each value must be a scalar or null")
    return dict(value)


def _parse_regex(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("text_matches must be a regular expression (a string)")
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"text_matches: not a valid regular expression: {err}") from err
    return value


def _parse_language(value: Any) -> str:
    if value not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    return str(value)


def _parse_loop(value: Any) -> tuple[str | None, ...]:
    """A form name, null (no form active), or a list of those (any of them)."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(v is None or (isinstance(v, str) and v) for v in items):
        raise ValueError("active_loop must be a form name, null (no form active), or a list of those")
    return tuple(items)


# --- comparisons --------------------------------------------------------------------------------


def same_value(expected: Any, got: Any) -> bool:
    """Loose equality for slots and entities: YAML ``true`` matches a bool, ``3`` matches 3.0 or "3"."""
    if expected is None or got is None:
        return expected is got
    if isinstance(expected, bool) or isinstance(got, bool):
        return isinstance(expected, bool) and isinstance(got, bool) and expected == got
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return float(expected) == float(got)
    return str(expected).strip().casefold() == str(got).strip().casefold()


def payload_offered(pattern: str, payloads: Sequence[str]) -> bool:
    """Exact payload, or a prefix when the pattern ends with ``*`` (``/kb_pick*``)."""
    if pattern.endswith("*"):
        return any(p.startswith(pattern[:-1]) for p in payloads)
    return pattern in payloads


# --- evaluations --------------------------------------------------------------------------------


def _intent(expected: tuple[str, ...], obs: Observation) -> Verdict:
    u = obs.understood
    if u is None:
        return Verdict(False, NO_TURN)
    conf = f" ({u.confidence:.2f})" if u.confidence is not None else ""
    return Verdict(u.intent in expected, f"{u.intent}{conf}")


def _entities(expected: dict[str, str | None], obs: Observation) -> Verdict:
    u = obs.understood
    if u is None:
        return Verdict(False, NO_TURN)
    got = [(str(e.get("entity")), e.get("value")) for e in u.entities]
    ok = all(any(n == name and (v is None or same_value(v, value)) for n, value in got) for name, v in expected.items())
    return Verdict(ok, [f"{n}={v}" for n, v in got])


def _slots(expected: dict[str, Any], obs: Observation) -> Verdict:
    u = obs.understood
    if u is None:
        return Verdict(False, NO_TURN)
    got = {k: u.slots.get(k) for k in expected}
    return Verdict(all(same_value(v, got[k]) for k, v in expected.items()), got)


def _type(expected: tuple[str, ...], obs: Observation) -> Verdict:
    return Verdict(any(t in expected for t in obs.types), obs.types)


def _not_type(expected: tuple[str, ...], obs: Observation) -> Verdict:
    return Verdict(not any(t in expected for t in obs.types), obs.types)


def _source(expected: tuple[str, ...], obs: Observation) -> Verdict:
    ids = obs.article_ids
    return Verdict(any(a in ids for a in expected), ids)


def _state(expected: tuple[str, ...], obs: Observation) -> Verdict:
    return Verdict(obs.state in expected, obs.state)


def _contains_any(expected: tuple[str, ...], obs: Observation) -> Verdict:
    text = obs.text.casefold()
    return Verdict(any(s.casefold() in text for s in expected), obs.text)


def _not_contains(expected: tuple[str, ...], obs: Observation) -> Verdict:
    text = obs.text.casefold()
    return Verdict(not any(s.casefold() in text for s in expected), obs.text)


def _matches(expected: str, obs: Observation) -> Verdict:
    return Verdict(re.search(expected, obs.text) is not None, obs.text)


def _buttons(expected: tuple[str, ...], obs: Observation) -> Verdict:
    payloads = obs.payloads
    return Verdict(all(payload_offered(p, payloads) for p in expected), payloads)


def _language(expected: str, obs: Observation) -> Verdict:
    return Verdict(obs.language == expected, obs.language)


def _actions(expected: tuple[str, ...], obs: Observation) -> Verdict:
    u = obs.understood
    if u is None:
        return Verdict(False, NO_TURN)
    return Verdict(all(a in u.actions for a in expected), u.actions)


def _not_actions(expected: tuple[str, ...], obs: Observation) -> Verdict:
    if obs.by_agent:
        return Verdict(True, "an agent's turn: the bot ran nothing")
    u = obs.understood
    if u is None:
        return Verdict(False, NO_TURN)
    return Verdict(not any(a in u.actions for a in expected), u.actions)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _button_titles(expected: tuple[str, ...], obs: Observation) -> Verdict:
    titles = obs.button_titles
    folded = [nfc(t) for t in titles]
    return Verdict(all(any(nfc(e) in t for t in folded) for e in expected), titles)


def _script(expected: str, obs: Observation) -> Verdict:
    ok, got = script.judge(obs.readable_text, obs.customer_texts, expected)
    return Verdict(ok, got)


def _active_loop(expected: tuple[str | None, ...], obs: Observation) -> Verdict:
    u = obs.understood
    if u is None:
        return Verdict(False, NO_TURN)
    return Verdict(u.active_loop in expected, u.active_loop)


CHECKS: dict[str, CheckSpec] = {
    spec.key: spec
    for spec in (
        CheckSpec("intent", "top intent is one of these", _any_strings("intent"), _intent),
        CheckSpec("entities", "these entities were extracted (with these values)", _parse_entities, _entities),
        CheckSpec("slots", "slot values after the turn", _parse_slots, _slots),
        CheckSpec("type", "some message of the reply has one of these types", _one_of(MESSAGE_TYPES, "type"), _type),
        CheckSpec("not_type", "no message of the reply has any of these types", _one_of(MESSAGE_TYPES, "not_type"), _not_type),
        CheckSpec("source", "the answer cites one of these article ids", _any_strings("source"), _source),
        CheckSpec("state", "conversation state after the turn", _one_of(STATES, "state"), _state),
        CheckSpec("text_contains_any", "the reply's text contains one of these (any case)", _any_strings("text_contains_any"), _contains_any),
        CheckSpec("text_not_contains", "the reply's text contains none of these (any case)", _any_strings("text_not_contains"), _not_contains),
        CheckSpec("text_matches", "a regular expression found in the reply's text", _parse_regex, _matches),
        CheckSpec("buttons", "these button payloads are offered (a trailing * matches a prefix)", _any_strings("buttons"), _buttons),
        CheckSpec("language", "the language of the reply", _parse_language, _language),
        CheckSpec("actions", "these actions ran in the turn", _action_names("actions"), _actions),
        CheckSpec("not_actions", "none of these actions ran in the turn", _action_names("not_actions"), _not_actions),
        CheckSpec("active_loop", "the form active after the turn (null: none; a list: any of them)", _parse_loop, _active_loop),
        CheckSpec("button_titles", "each of these is part of some offered button's title (any case)",
                  _any_strings("button_titles"), _button_titles),
        CheckSpec("script", "the Chinese the customer reads is all Traditional (hant) or Simplified (hans)",
                  _parse_script, _script),
    )
}
