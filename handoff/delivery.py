"""Delivery to the customer: store what the agent (or the handoff) says, then get it there — their
websocket, their channel's push, or (plain REST) with their next answer / ``GET .../messages``.
A message nobody could deliver stays ``undelivered`` and is counted on the conversation, so the
next turn (``turns._backlog``) or the customer's own read returns it.
"""

from __future__ import annotations

import logging
from typing import Any

from anyio import to_thread
from sqlalchemy import select, update

from channels.notices import in_script
from conversations.models import Conversation, Message, undelivered_less
from conversations.service import OutboundMessage
from handoff import context as ctx
from handoff.base import AgentIdentity, HandoffBase
from handoff.events import conversation_topic
from handoff.lifecycle import Column
from storage.db import transaction

log = logging.getLogger(__name__)


class Delivery(HandoffBase):
    async def deliver(self, conversation_id: int, messages: list[OutboundMessage], *, agent: AgentIdentity | None = None,
                      state: str | None = None) -> list[dict[str, Any]]:
        """Store messages for the customer and get them there: their websocket, their channel's push,
        or (plain REST) with their next answer / ``GET .../messages``."""
        def store() -> tuple[str, str, list[int], list[dict[str, Any]], list[OutboundMessage]]:
            with transaction(self._sessions) as db:
                conv = db.get_one(Conversation, conversation_id)
                localised = in_script(messages, conv.language, conv.script)  # zh-Hant customers read Traditional
                rows = []
                for out in localised:
                    row = self._out_row(conv.id, out, conv.language, conv.channel, status="undelivered")
                    if agent is not None:
                        row.data = {**(row.data or {}), "agent": out.agent or agent.display_name, "agent_id": agent.id}
                    db.add(row)
                    rows.append(row)
                conv.undelivered += len(rows)
                db.flush()
                return conv.sender_id, conv.channel, [r.id for r in rows], [ctx.message_view(r) for r in rows], localised
        sender, channel, ids, views, localised = await to_thread.run_sync(store)
        delivered = False
        topic = conversation_topic(sender)
        if await self.events.asubscribers(topic):  # on any replica (Redis), without blocking the loop
            for view in views:
                self.events.publish(topic, {"type": "message", "message": view, "state": state})
            delivered = True
        if self.pushers is not None and self.pushers.can_reach(channel):
            try:
                delivered = await self.pushers.push(channel, sender, localised) or delivered
            except Exception as err:  # PushFailed or a channel bug: the message stays undelivered
                log.warning("push failed; kept for the customer's next request",
                            extra={"channel": channel, "sender_id": sender, "error": str(err)})
        if delivered:
            await to_thread.run_sync(self._mark_delivered, conversation_id, ids)
        return views

    def _mark_delivered(self, conversation_id: int, ids: list[int]) -> None:
        with transaction(self._sessions) as db:
            changed = db.execute(update(Message).where(Message.id.in_(ids), Message.status == "undelivered")
                                 .values(status="delivered")).rowcount
            if changed:
                db.execute(update(Conversation).where(Conversation.id == conversation_id)
                           .values(undelivered=undelivered_less(changed)))

    def customer_messages(self, sender_id: str, after: int = 0, limit: int = 200) -> tuple[str, list[dict[str, Any]]]:
        """The customer's own conversation after message ``after`` (their read marks delivery)."""
        with transaction(self._sessions) as db:
            conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
            if conv is None:
                return Column.BOT, []
            rows = list(db.scalars(select(Message).where(Message.conversation_id == conv.id, Message.id > after)
                                   .order_by(Message.id).limit(limit)))
            newly = [m for m in rows if m.status == "undelivered"]
            for m in newly:
                m.status = "delivered"
            if newly:
                conv.undelivered = max(conv.undelivered - len(newly), 0)
            return conv.state, [ctx.message_view(m) for m in rows]
