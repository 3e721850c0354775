"""What a scenario file says, once loaded and checked: plain immutable data.

Every element keeps the file and line it came from, so that a failing check, an unknown key or a
bad value is reported where the author can fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "zh", "ru")
RESOLUTIONS = ("bot", "kb", "human", "none")
MESSAGE_TYPES = ("text", "kb_answer", "handoff", "agent")
STATES = ("bot", "queued", "human", "closed")


@dataclass(frozen=True)
class Location:
    path: Path
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Check:
    """One expectation of a turn: ``key`` names a check in ``scenarios.checks.CHECKS``."""

    key: str
    expected: Any
    where: Location


@dataclass(frozen=True)
class Turn:
    """One action: the customer's typed text, a literal button payload or a click on an offered
    button; or a human agent's action in the console (``agent``: claim, reply with ``text``,
    resolve, hand_back)."""

    where: Location
    user: str | None = None
    payload: str | None = None
    click: str | None = None
    agent: str | None = None
    text: str | None = None  # what the agent writes (agent: reply)
    language: str | None = None  # sent with the request, as a language picker would
    checks: tuple[Check, ...] = ()

    @property
    def said(self) -> str:
        """How the turn reads in a report."""
        if self.user is not None:
            return self.user
        if self.payload is not None:
            return f"[payload] {self.payload}"
        if self.agent is not None:
            return f"[agent {self.agent}] {self.text or ''}".rstrip()
        return f"[click] {self.click}"


@dataclass(frozen=True)
class Outcome:
    resolved_by: str | None = None
    handoff_reason: str | None = None
    where: Location | None = None


@dataclass(frozen=True)
class StoreCheck:
    """After the conversation, a field of a reserved order must hold this value."""

    order: str  # the name given in ``uses``
    field: str
    expected: Any
    where: Location


@dataclass(frozen=True)
class ScenarioCheck:
    """A check on the whole conversation: ``eventually`` / ``never`` (``expected``: the per-turn
    checks of the mapping), ``ticket`` (sub-key → any of these values) or
    ``side_effects.<name>`` (a boolean)."""

    key: str
    expected: Any
    where: Location


@dataclass(frozen=True)
class Scenario:
    name: str
    where: Location
    language: str
    language_given: bool  # False: detected from the customer's text
    channel: str
    turns: tuple[Turn, ...]
    outcome: Outcome = field(default_factory=Outcome)
    uses: dict[str, str] = field(default_factory=dict)  # placeholder name → order pool
    store: tuple[StoreCheck, ...] = ()
    tags: tuple[str, ...] = ()
    conversation: tuple[ScenarioCheck, ...] = ()  # eventually, never, ticket, side_effects.*

    @property
    def has_agent(self) -> bool:
        return any(t.agent is not None for t in self.turns)

    @property
    def id(self) -> str:
        """Stable identity in reports: file stem and name."""
        return f"{self.where.path.stem}::{self.name}"
