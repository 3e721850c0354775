"""Who resolved a conversation: the rules behind ``outcome: {resolved_by: ...}`` and the figures.

- **human**: the conversation was handed off: some reply had state ``queued`` or ``human``, or a
  message of type ``agent``, or a handoff ticket exists for the conversation. A message of type
  ``handoff`` alone is not enough: the bot's *offer* of a person ("Would you like me to connect
  you with a person?") has that type too, and an offer declined or ignored is no handoff.
  A handoff wins over everything the bot did before it.
- **bot**: a task action completed: one of ``TASK_ACTIONS`` ran in a turn after which the customer
  was verified (slot ``verified`` true), or ``action_reset_password`` ran (it needs no
  verification). A refusal by policy ("outside the 90-day window") counts: the customer got the
  store's answer; so does a write form ended by the customer's no to the change stated back. A form that ended after too many failed verifications does not.
- **kb**: a ``kb_answer`` message was given and the customer did not mark it unhelpful (the
  ``kb_answers`` row behind it, found through its feedback button, is not ``helpful = false``).
- **none**: anything else (chit-chat, a declined question, a task left unfinished).

Precedence: human > bot > kb > none. The turn of resolution is the first turn (1-based) where the
winning kind happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scenarios.observed import Observation

TASK_ACTIONS = frozenset({
    "action_order_status", "action_track_shipment", "action_refund_status", "action_submit_refund",
    "action_submit_return", "action_cancel_order", "action_change_address",
    # the end of a write form (bot/actions/orders.py): the write after a yes, or the customer's no
    # or the store's refusal, both answers in themselves
    "action_complete_task",
})
UNVERIFIED_TASK_ACTIONS = frozenset({"action_reset_password"})
HANDOFF_STATES = frozenset({"queued", "human"})
HANDOFF_TYPES = frozenset({"agent"})


@dataclass(frozen=True)
class Resolution:
    resolved_by: str  # bot | kb | human | none
    at_turn: int | None  # 1-based turn where it happened
    handoff_reasons: list[str] = field(default_factory=list)  # tickets' reason and rule
    evidence: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"resolved_by": self.resolved_by, "at_turn": self.at_turn, "handoff_reasons": self.handoff_reasons,
                "evidence": self.evidence}


def handed_off(obs: Observation) -> bool:
    return obs.state in HANDOFF_STATES or any(t in HANDOFF_TYPES for t in obs.types)


def task_completed(obs: Observation) -> str | None:
    """The task action that completed in this turn, if any."""
    u = obs.understood
    if u is None:
        return None
    for action in u.actions:
        if action in UNVERIFIED_TASK_ACTIONS:
            return action
        if action in TASK_ACTIONS and u.slots.get("verified") is True:
            return action
    return None


def kb_answered(obs: Observation, helpful: dict[int, bool | None]) -> bool:
    """A kb_answer in this reply that the customer did not mark unhelpful."""
    if "kb_answer" not in obs.types:
        return False
    ids = obs.kb_answer_ids()
    return not ids or any(helpful.get(i) is not False for i in ids)


def resolve(
    observations: Sequence[Observation], kb_rows: Sequence[dict[str, Any]], tickets: Sequence[dict[str, Any]] | None
) -> Resolution:
    reasons = [str(v) for t in tickets or [] for v in (t.get("reason"), t.get("rule")) if v]
    for i, obs in enumerate(observations, 1):
        if handed_off(obs):
            return Resolution("human", i, reasons, f"turn {i}: state {obs.state}, types {obs.types}")
    if tickets:
        return Resolution("human", len(observations), reasons, f"handoff ticket {tickets[0].get('id')}")
    for i, obs in enumerate(observations, 1):
        action = task_completed(obs)
        if action:
            return Resolution("bot", i, reasons, f"turn {i}: {action}")
    helpful = {int(r["id"]): r.get("helpful") for r in kb_rows}
    for i, obs in enumerate(observations, 1):
        if kb_answered(obs, helpful):
            return Resolution("kb", i, reasons, f"turn {i}: kb_answer {obs.article_ids}")
    return Resolution("none", None, reasons, "no task completed, no KB answer kept, no handoff")
