"""The handoff's deployment configuration (queues, hours, topics, demo agents, canned replies),
read from the YAML file named by ``settings.handoff_config`` (default ``handoff/queues.yml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LANGUAGES = ("en", "zh", "ru")


class ConfigError(ValueError):
    """The handoff configuration file is invalid; the message says where."""


@dataclass(frozen=True)
class QueueConfig:
    name: str
    topic: str
    language: str
    timezone: str
    hours: dict[str, list[str]]
    avg_handle_minutes: int


@dataclass(frozen=True)
class AgentSeed:
    username: str
    display_name: str
    queues: list[str]
    capacity: int = 3
    role: str = "agent"


@dataclass(frozen=True)
class CannedReply:
    id: str
    language: str
    title: str
    text: str


@dataclass(frozen=True)
class HandoffConfig:
    queues: list[QueueConfig]
    topics: dict[str, str]  # intent → topic
    rule_topics: dict[str, str]  # business rule → topic
    demo_agents: list[AgentSeed] = field(default_factory=list)
    canned_replies: list[CannedReply] = field(default_factory=list)
    avg_handle_minutes: int = 6


def _hours(raw: Any, where: str) -> dict[str, list[str]]:
    if raw in (None, {}):
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: hours must be a mapping of day → [open, close]")
    out: dict[str, list[str]] = {}
    for day, span in raw.items():
        if day not in DAYS:
            raise ConfigError(f"{where}: unknown day {day!r} (use {', '.join(DAYS)})")
        if not (isinstance(span, list) and len(span) == 2 and all(_is_hhmm(t) for t in span) and span[0] < span[1]):
            raise ConfigError(f"{where}: {day} must be [\"HH:MM\", \"HH:MM\"] with open before close")
        out[day] = [str(span[0]), str(span[1])]
    return out


def _is_hhmm(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        return False
    hh, mm = value[:2], value[3:]
    return hh.isdigit() and mm.isdigit() and int(hh) <= 24 and int(mm) < 60


def _timezone(name: str, where: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(f"{where}: unknown time zone {name!r}") from err
    return name


def parse(data: dict[str, Any]) -> HandoffConfig:
    default_tz = _timezone(str(data.get("timezone") or "UTC"), "timezone")
    avg = int(data.get("avg_handle_minutes") or 6)
    queues = []
    for i, q in enumerate(data.get("queues") or []):
        where = f"queues[{i}]"
        if not isinstance(q, dict) or not q.get("name") or not q.get("topic"):
            raise ConfigError(f"{where}: name and topic are required")
        if q.get("language") not in LANGUAGES:
            raise ConfigError(f"{where}: language must be one of {LANGUAGES}")
        queues.append(QueueConfig(
            name=str(q["name"]), topic=str(q["topic"]), language=str(q["language"]),
            timezone=_timezone(str(q.get("timezone") or default_tz), where),
            hours=_hours(q.get("hours"), where), avg_handle_minutes=int(q.get("avg_handle_minutes") or avg),
        ))
    if not queues:
        raise ConfigError("queues: at least one queue is required")
    names = {q.name for q in queues}
    topics = {intent: topic for topic, intents in (data.get("topics") or {}).items() for intent in intents or []}
    agents = []
    for i, a in enumerate(data.get("demo_agents") or []):
        unknown = set(a.get("queues") or []) - names
        if unknown:
            raise ConfigError(f"demo_agents[{i}]: unknown queues {sorted(unknown)}")
        agents.append(AgentSeed(str(a["username"]), str(a.get("display_name") or a["username"]),
                                list(a.get("queues") or []), int(a.get("capacity") or 3), str(a.get("role") or "agent")))
    canned = [CannedReply(str(c["id"]), str(c["language"]), str(c["title"]), str(c["text"]))
              for c in data.get("canned_replies") or []]
    return HandoffConfig(queues, topics, dict(data.get("rule_topics") or {}), agents, canned, avg)


def load(path: Path) -> HandoffConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"cannot read handoff configuration {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    try:
        return parse(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
