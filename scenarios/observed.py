"""What the runner saw for one turn: the channel's reply and what the bot understood.

The reply comes from the channel (what the customer sees); the understanding comes from the
gateway's conversation store (table ``turns``), which records intent, entities, slots and the
actions run for every inbound message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_ANSWER_ID = re.compile(r'"kb_answer_id"\s*:\s*"?(\d+)')


@dataclass(frozen=True)
class Understood:
    """One row of the gateway's ``turns`` table."""

    intent: str | None
    confidence: float | None
    intent_ranking: list[dict[str, Any]] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    active_loop: str | None = None

    def brief(self) -> str:
        """One line for a failure report: intent, entities, the slots that are set, the form."""
        conf = f" {self.confidence:.2f}" if self.confidence is not None else ""
        ents = ", ".join(f"{e.get('entity')}={e.get('value')}" for e in self.entities)
        slots = ", ".join(f"{k}={v}" for k, v in sorted(self.slots.items()) if v not in (None, False, [], "") and k != "language")
        parts = [f"intent={self.intent}{conf}"]
        if ents:
            parts.append(f"entities[{ents}]")
        if slots:
            parts.append(f"slots[{slots}]")
        if self.actions:
            parts.append(f"actions[{', '.join(self.actions)}]")
        if self.active_loop:
            parts.append(f"form={self.active_loop}")
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "intent": self.intent, "confidence": self.confidence, "intent_ranking": self.intent_ranking,
            "entities": self.entities, "slots": self.slots, "actions": self.actions, "active_loop": self.active_loop,
        }


@dataclass
class Observation:
    """The reply to one turn (HTTP status, state, messages) and what the bot understood."""

    status: int
    state: str | None = None
    language: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    understood: Understood | None = None
    kb_rows: list[dict[str, Any]] = field(default_factory=list)  # kb_answers rows written in this turn
    error: str | None = None  # transport or HTTP error, when there is no usable reply
    conversation_token: str | None = None  # the first answer's token (reads the conversation later)
    by_agent: bool = False  # the turn was a person's action (the bot ran nothing)
    customer_texts: list[str] = field(default_factory=list)  # what the customer typed so far (echo exemption)

    @property
    def text(self) -> str:
        return "\n".join(str(m.get("text") or "") for m in self.messages)

    @property
    def types(self) -> list[str]:
        return [str(m.get("type") or "text") for m in self.messages]

    @property
    def buttons(self) -> list[dict[str, str]]:
        return [b for m in self.messages for b in (m.get("buttons") or [])]

    @property
    def button_titles(self) -> list[str]:
        """Titles of every button of every message (quick replies included)."""
        return [str(b.get("title") or "") for m in self.messages
                for b in [*(m.get("buttons") or []), *(m.get("quick_replies") or [])] if isinstance(b, dict)]

    @property
    def readable_text(self) -> str:
        """Everything the customer reads: message texts, KB source titles and button titles (no payloads)."""
        titles = [str(s.get("title") or "") for m in self.messages for s in (m.get("sources") or []) if isinstance(s, dict)]
        return "\n".join([self.text, *titles, *self.button_titles])

    @property
    def payloads(self) -> list[str]:
        return [str(b.get("payload") or "") for b in self.buttons]

    @property
    def article_ids(self) -> list[str]:
        """Articles this turn's answers cite: the reply's sources, else the KB's own record of the turn.

        The REST contract may carry only title and url; the ``kb_answers`` row written by the answer
        names the article either way.
        """
        ids = [str(s["article_id"]) for m in self.messages for s in (m.get("sources") or []) if s.get("article_id")]
        ids += [str(r["article_id"]) for r in self.kb_rows if r.get("article_id") and r.get("outcome") == "answered"]
        return list(dict.fromkeys(ids))

    def kb_answer_ids(self) -> list[int]:
        """Ids of kb_answers rows behind this reply's kb_answer messages (from their feedback buttons)."""
        found: list[int] = []
        for m in self.messages:
            if m.get("type") != "kb_answer":
                continue
            for b in m.get("buttons") or []:
                match = _ANSWER_ID.search(str(b.get("payload") or ""))
                if match:
                    found.append(int(match.group(1)))
        return list(dict.fromkeys(found))

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "state": self.state, "language": self.language, "messages": self.messages,
            "understood": self.understood.as_dict() if self.understood else None,
            "kb_rows": self.kb_rows, "error": self.error,
        }


def json_value(value: Any) -> Any:
    """JSON columns read with plain SQL come back as text on SQLite and as objects on PostgreSQL."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
