"""Checks over the whole conversation: ``eventually`` and ``never``.

Both take a mapping of per-turn checks (the keys and values of ``expect:``, parsed by the same
parsers) and look at every turn in order, customer and agent turns alike:

- ``eventually``: some turn satisfies **all** the checks together. A turn with nothing recorded in
  the conversation store cannot be that turn for checks that read the store (intent, actions, ...);
  it is skipped rather than failing the key.
- ``never``: no turn satisfies **any** element of any check. A list is taken element by element
  (``actions: [a, b]``: neither ``a`` nor ``b`` ever ran), a mapping pair by pair (``slots``).
  ``script: X`` is violated by a reply whose Chinese contains a character only script X has.
  Turns with nothing recorded cannot violate the checks that read the store; the report counts them.

Turns that got no reply at all (a transport error, a click on a button not offered) are skipped:
they fail the scenario on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scenarios import script
from scenarios.checks import CHECKS, NO_TURN, Verdict
from scenarios.model import Check
from scenarios.observed import Observation

NEEDS_TURN = frozenset({"intent", "entities", "slots", "actions", "not_actions", "active_loop"})


def _recorded(key: str, obs: Observation) -> bool:
    """Can this turn be judged on ``key``? Store-reading checks need the turn's row (an agent's turn
    is judged on ``not_actions``: the bot ran nothing)."""
    return key not in NEEDS_TURN or obs.understood is not None or (key == "not_actions" and obs.by_agent)


def eventually(checks: Sequence[Check], observations: Sequence[Observation]) -> Verdict:
    last: dict[str, Any] = {}
    skipped = 0
    for i, obs in enumerate(observations, 1):
        if obs.error is not None:
            continue
        if not all(_recorded(c.key, obs) for c in checks):
            skipped += 1
            last = {c.key: NO_TURN for c in checks if not _recorded(c.key, obs)}
            continue
        verdicts = {c.key: CHECKS[c.key].evaluate(c.expected, obs) for c in checks}
        if all(v.ok for v in verdicts.values()):
            return Verdict(True, f"held at turn {i}")
        last = {k: v.got for k, v in verdicts.items()}
    note = f" ({skipped} turns without a record skipped)" if skipped else ""
    return Verdict(False, {"never held" + note: last})


def elements(check: Check) -> list[tuple[str, Any]]:
    """The separate forbidden conditions of a ``never`` check: (label, value for the check's evaluator)."""
    value = check.expected
    if isinstance(value, tuple):
        return [(f"{check.key}: {v}", (v,)) for v in value]
    if isinstance(value, dict):
        return [(f"{check.key}: {k}={v}", {k: v}) for k, v in value.items()]
    return [(f"{check.key}: {value}", value)]


def _violates(key: str, value: Any, obs: Observation) -> tuple[bool, Any]:
    if key == "script":
        bad = script.leaks(obs.readable_text, obs.customer_texts, value)
        return bool(bad), bad
    verdict = CHECKS[key].evaluate(value, obs)
    return verdict.ok, verdict.got


def never(checks: Sequence[Check], observations: Sequence[Observation]) -> Verdict:
    conditions = [(c.key, label, value) for c in checks for label, value in elements(c)]
    skipped = 0
    for i, obs in enumerate(observations, 1):
        if obs.error is not None:
            continue
        if any(not _recorded(key, obs) for key, _, _ in conditions):
            skipped += 1
        for key, label, value in conditions:
            if not _recorded(key, obs):
                continue
            hit, seen = _violates(key, value, obs)
            if hit:
                return Verdict(False, f"turn {i}: {label}; seen {seen}")
    judged = sum(o.error is None for o in observations)
    note = f", {skipped} of them without a record (store checks skipped there)" if skipped else ""
    return Verdict(True, f"not seen in {judged} turns{note}")


EVALUATE = {"eventually": eventually, "never": never}
