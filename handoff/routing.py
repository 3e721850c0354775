"""Who gets a handoff: the queue (topic × language) and, within it, the agent.

Queues are ordered by priority, then waiting time; an agent qualifies for a queue they serve,
when online (seen recently) and below capacity; among those, the least busy one is chosen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from handoff.config import HandoffConfig

GENERAL = "general"


def topic_for(config: HandoffConfig, rule: str | None, intents: Iterable[str | None]) -> str:
    """The rule's topic, else the topic of the most recent intent that has one, else general."""
    if rule and rule in config.rule_topics:
        return config.rule_topics[rule]
    for intent in intents:
        if intent and intent in config.topics:
            return config.topics[intent]
    return GENERAL


@dataclass(frozen=True)
class QueueRef:
    name: str
    topic: str
    language: str


def choose_queue(queues: Sequence[QueueRef], topic: str, language: str) -> str:
    for want_topic, want_lang in ((topic, language), (GENERAL, language), (topic, "en"), (GENERAL, "en")):
        for q in queues:
            if q.topic == want_topic and q.language == want_lang:
                return q.name
    return queues[0].name


@dataclass(frozen=True)
class AgentLoad:
    agent_id: int
    queues: tuple[str, ...]
    capacity: int
    active_chats: int
    online: bool


def pick_agent(agents: Iterable[AgentLoad], queue: str, exclude: int | None = None) -> int | None:
    """Least busy qualified agent (fewest chats relative to capacity; ties: fewer chats, lower id)."""
    fit = [a for a in agents if a.online and queue in a.queues and a.active_chats < a.capacity and a.agent_id != exclude]
    if not fit:
        return None
    best = min(fit, key=lambda a: (a.active_chats / max(a.capacity, 1), a.active_chats, a.agent_id))
    return best.agent_id


def wait_minutes(position: int, avg_handle_minutes: int, online_agents: int) -> int:
    """Rough wait: the people ahead (and you) shared among the queue's online agents."""
    return max(1, math.ceil(position * avg_handle_minutes / max(online_agents, 1)))
