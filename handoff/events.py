"""Live events for agents' consoles and customers' websockets: handoff's topics on the gateway's bus.

The bus (``channels/events.py``: in memory for one process, Redis pub/sub across replicas when
``REDIS_URL`` is set) never blocks a publisher: a slow subscriber's queue is bounded and the oldest
event is dropped (the console re-reads the ticket list on reconnect, customers re-read with ``?after=``).
"""

from __future__ import annotations

from channels.events import QUEUE_SIZE, EventBus, Subscription, events_from_settings

__all__ = ["AGENTS", "QUEUE_SIZE", "EventBus", "Subscription", "conversation_topic", "events_from_settings"]


def conversation_topic(sender_id: str) -> str:
    return f"conversation:{sender_id}"


AGENTS = "agents"
