"""Open widget sockets per sender, and the widget's pusher for messages outside a turn.

The handoff module calls ``app.state.pushers.push("widget", sender_id, messages)`` for an agent's
reply or a queue update; every socket that sender has open (several tabs) gets a ``push`` frame.
When none is open nothing is lost: the message is already in the transcript and the widget shows
it from the history it receives on its next connect.

Several gateway replicas (``REDIS_URL`` set, the bus is ``channels/events_redis.py``'s): a push is
published on the bus topic ``widget:<sender_id>`` instead, and every replica holding a socket of
that sender (this one included, through the bus's local path) sends it from a relay task it keeps
per sender while that sender has sockets open there: once per socket, in order per publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from dataclasses import asdict
from typing import Any

from anyio import to_thread
from starlette.websockets import WebSocket, WebSocketState

from channels.events import EventBus, Subscription, widget_topic
from channels.ratelimit import SenderLimiter
from conversations.service import ConversationService, OutboundMessage

from .identity import WidgetIdentity

__all__ = ["Connection", "WidgetHub"]

log = logging.getLogger(__name__)


class Connection:
    """One open widget socket. Sends are serialised: replies, pushes and pongs come from different tasks."""

    def __init__(self, websocket: WebSocket, identity: WidgetIdentity, locale: str | None = None) -> None:
        self.websocket = websocket
        self.identity = identity
        self.locale = locale  # the widget's interface language, for the gateway's own notices
        self.address: str | None = None  # the browser's address (per-address limits and ticket caps)
        self.in_flight: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()

    @property
    def sender_id(self) -> str:
        return self.identity.sender_id

    async def send(self, frame: dict[str, Any]) -> bool:
        """False when the socket is gone (the customer gets it from history on reconnect)."""
        text = json.dumps(frame, ensure_ascii=False)
        async with self._send_lock:
            if self.websocket.application_state != WebSocketState.CONNECTED:
                return False
            try:
                await self.websocket.send_text(text)
            except Exception:  # noqa: BLE001 - any transport error means this socket is gone
                return False
        return True


class WidgetHub:
    """sender id → open connections. Registered on ``app.state.pushers`` under "widget"."""

    def __init__(self, conversations: ConversationService, limiter: SenderLimiter, bus: EventBus | None = None) -> None:
        self._conversations = conversations
        self.limiter = limiter  # per sender id, shared by all of a sender's sockets and the REST fallback
        self._connections: defaultdict[str, set[Connection]] = defaultdict(set)
        self.tasks: set[asyncio.Task[None]] = set()  # answers in progress, kept alive past their socket
        self._bus = bus if bus is not None and bus.shared else None  # in memory: push to local sockets directly
        self._relays: dict[str, asyncio.Task[None]] = {}  # sender id → its pushes from the bus (shared bus only)

    def add(self, conn: Connection) -> None:
        self._connections[conn.sender_id].add(conn)
        if self._bus is not None and conn.sender_id not in self._relays:
            sub = self._bus.subscribe(widget_topic(conn.sender_id))
            self._relays[conn.sender_id] = asyncio.get_running_loop().create_task(
                self._relay(conn.sender_id, sub), name="widget-relay")

    async def ready(self, sender_id: str) -> None:
        """Wait until pushes for ``sender_id`` published on any replica reach this one (shared bus)."""
        if self._bus is not None:
            await self._bus.ready(widget_topic(sender_id))

    def remove(self, conn: Connection) -> None:
        conns = self._connections.get(conn.sender_id)
        if conns is None:
            return
        conns.discard(conn)
        if not conns:
            del self._connections[conn.sender_id]
            relay = self._relays.pop(conn.sender_id, None)
            if relay is not None:
                relay.cancel()

    async def _relay(self, sender_id: str, sub: Subscription) -> None:
        """Pushes published for ``sender_id`` (on any replica) to its sockets here, one at a time."""
        assert self._bus is not None
        try:
            while True:
                event = await sub.get()
                try:
                    messages = [OutboundMessage(**m) for m in event["messages"]]
                    await self._push_here(sender_id, messages)
                except Exception:  # one bad push must not stop the sender's later ones
                    log.exception("widget push from the bus failed", extra={"sender_id": sender_id})
        finally:
            self._bus.unsubscribe(sub)

    def open_connections(self, sender_id: str | None = None) -> int:
        if sender_id is not None:
            return len(self._connections.get(sender_id, ()))
        return sum(len(c) for c in self._connections.values())

    async def push(self, sender_id: str, messages: list[OutboundMessage]) -> None:
        """Send ``messages`` to every open socket of ``sender_id`` (on every replica with a shared bus)."""
        if self._bus is None:
            await self._push_here(sender_id, messages)
        else:
            self._bus.publish(widget_topic(sender_id), {"messages": [asdict(m) for m in messages]})

    async def _push_here(self, sender_id: str, messages: list[OutboundMessage]) -> None:
        """To this process's sockets of ``sender_id``, with the conversation's current state."""
        conns = list(self._connections.get(sender_id, ()))
        if not conns:
            return
        found = await to_thread.run_sync(self._conversations.conversation_state, sender_id)
        frame: dict[str, Any] = {"type": "push", "messages": await self._with_agent_names(sender_id, messages)}
        if found is not None:
            frame["state"], frame["language"] = found
        delivered = 0
        for conn in conns:
            with contextlib.suppress(Exception):
                delivered += await conn.send(frame)
        log.debug("widget push", extra={"sender_id": sender_id, "sockets": len(conns), "delivered": delivered})

    async def _with_agent_names(self, sender_id: str, messages: list[OutboundMessage]) -> list[dict[str, Any]]:
        """Agent replies carry the agent's display name, which handoff stores beside the message
        (Message.data["agent"]) rather than in OutboundMessage; read it back from the transcript."""
        frames = [m.as_dict() for m in messages]
        if not any(m.type == "agent" for m in messages):
            return frames
        tail = (await to_thread.run_sync(self._conversations.transcript, sender_id))[-50:]
        names = {e["text"]: e["agent"] for e in tail if e["type"] == "agent" and e.get("agent")}
        for frame in frames:
            if frame["type"] == "agent" and frame["text"] in names:
                frame["agent"] = names[frame["text"]]
        return frames
