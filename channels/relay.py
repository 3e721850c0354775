"""The path every Telegram/WeChat message takes between the channel and the conversation service.

    channel verifies + parses → ``ChannelMessage`` → record it (unique by the channel's own id: a
    redelivery stops here) → limits (type, size, per-sender rate: a polite notice instead of the bot)
    → ``ConversationService.handle`` → ``channel.render`` → outbox (or, with ``reply_within``, the
    channel's HTTP answer: WeChat's passive reply)

Push channels cannot answer "503, retry" like REST: the customer wrote once and expects one answer.
So a message that arrives while Rasa is down stays ``pending`` in ``channel_inbound`` and the relay
retries it (``retry_loop``) with the same message id until it is answered: once, and in the order
the customer wrote. A per-sender lock keeps a customer's messages in order; different customers
run in parallel. ``push`` is the other way in: a message outside a turn (an agent's reply), rendered
and stored in the outbox the same way.

With several gateway replicas (PostgreSQL) the per-sender lock is a PostgreSQL advisory lock of its
own family (``RELAY_LOCKS``, storage/coordination.py), not only an ``asyncio.Lock``. The conversation's
turn lock is not enough here: it covers ``ConversationService.handle`` only, while this lock also
covers the catch-up of older records and the delivery after the turn. Without it, replica B, catching
up the customer's previous message while replica A still answers it, would get the stored answer once
A's turn ends and put it in the outbox, while A gives the same answer as WeChat's passive reply: the
customer would read it twice. Lock order is always relay lock, then turn lock, each family in its own
connection pool, so neither can wait for the other in a circle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from anyio import to_thread
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from channels import notices
from channels.channel import ChannelMessage, PushChannel, conversation_language
from channels.models import ChannelInbound, ChannelOutbox
from channels.outbox import Delivery, Outbox
from channels.ratelimit import SenderLimiter
from conversations import language as lang
from conversations.service import ConversationService, InboundMessage, MessagePending, OutboundMessage
from storage.coordination import LocalTurnLocks, TurnLocks
from storage.db import transaction

__all__ = ["ChannelMessage", "ChannelRelay", "Reply"]

log = logging.getLogger(__name__)

# A message being processed right now is not "due" for the retry loop until this has passed
# (a gateway that died mid-turn leaves it for the retry loop to finish).
IN_FLIGHT_GRACE_S = 90.0


@dataclass(frozen=True)
class Reply:
    status: str  # answered | pending | declined
    language: str
    script: str | None
    messages: list[OutboundMessage] = field(default_factory=list)


class _PassiveReply:
    """The handshake between a turn in the background and the request that may still carry its
    answer: the turn offers its rendered deliveries when ready; if the request stopped waiting
    (or they do not fit) the turn enqueues them instead. Never both."""

    def __init__(self, channel: PushChannel) -> None:
        self.future: asyncio.Future[list[Delivery]] = asyncio.get_running_loop().create_future()
        self._channel = channel

    def offer(self, deliveries: list[Delivery]) -> bool:
        if self.future.done() or not self._channel.passive_fits(deliveries):
            return False
        self.future.set_result(deliveries)
        return True

    def close(self) -> None:
        """Nothing to say in the response (enqueued, pending or silent): let the request answer at once."""
        if not self.future.done():
            self.future.set_result([])

    async def wait(self, timeout_s: float) -> list[Delivery] | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.future), timeout=timeout_s)
        if self.future.cancel():  # still open: close it so the turn uses the outbox
            return None
        return self.future.result() or None


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class ChannelRelay:
    """Between the push channels and the conversation service; the channels register here."""

    sessions: sessionmaker[Session]
    service: ConversationService
    outbox: Outbox
    limiter: SenderLimiter
    _: KW_ONLY
    max_text_chars: int
    retry_s: float
    # Per sender: catch-up, turn and delivery in order (across replicas on PostgreSQL: module docstring).
    locks: TurnLocks = field(default_factory=LocalTurnLocks)
    channels: dict[str, PushChannel] = field(init=False, default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(init=False, default_factory=set)

    def register(self, channel: PushChannel) -> None:
        self.channels[channel.name] = channel

    # --- the inbound path ------------------------------------------------------------------------
    async def handle(self, msg: ChannelMessage) -> int | None:
        """Record, answer and enqueue the reply of one message; None when it is a redelivery (nothing done)."""
        return await self._handle(msg, None)

    async def reply_within(self, msg: ChannelMessage, timeout_s: float) -> list[Delivery] | None:
        """Like ``handle``, but the reply comes back instead when, within ``timeout_s``, it is ready, fits
        the channel's response (``passive_fits``) and nothing older for this customer is still on its way.

        None: the reply went, or goes when ready, through the outbox. The turn itself is never cut short.
        """
        passive = _PassiveReply(self.channels[msg.channel])

        async def turn() -> None:
            try:
                await self._handle(msg, passive)
            finally:
                passive.close()

        self.spawn(turn())
        return await passive.wait(timeout_s)

    async def _handle(self, msg: ChannelMessage, passive: _PassiveReply | None) -> int | None:
        if await to_thread.run_sync(self._exists, msg.channel, msg.external_id):
            return None
        reason = await self._decline_reason(msg)
        record_id = await to_thread.run_sync(self._insert, msg, reason)
        if record_id is None:
            return None
        async with self.locks.hold(msg.sender_id):
            await self._catch_up(msg.sender_id, before_id=record_id)
            await self._process(record_id, passive)
        return record_id

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine in the background (a turn past WeChat's passive window), keeping a reference."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def push(self, channel: str, sender_id: str, messages: list[OutboundMessage]) -> None:
        """A message outside a turn: render in the conversation's language and enqueue.

        Returning means "accepted for delivery": the row is stored and retried until the channel takes it.
        """
        def render() -> list[Delivery]:
            known = conversation_language(self.sessions, sender_id)
            language = known[0] if known else lang.detect(" ".join(m.text for m in messages)[:500]).language
            return self.channels[channel].render(sender_id, language, messages)

        await self.outbox.enqueue(channel, sender_id, await to_thread.run_sync(render))

    async def _decline_reason(self, msg: ChannelMessage) -> str | None:
        if not msg.supported:
            return "unsupported"
        decision = await self.limiter.acheck(msg.sender_id)  # Redis (shared limiter): off the event loop
        if not decision.allowed:
            return "rate_limited" if decision.notify else "rate_limited_silent"
        if msg.text is not None and len(msg.text) > self.max_text_chars:
            return "too_long"
        return None

    async def _catch_up(self, sender_id: str, before_id: int | None = None) -> bool:
        """Answer this customer's older unanswered messages first; False if one is still pending."""
        for record_id in await to_thread.run_sync(self._outstanding, sender_id, before_id):
            if not await self._process(record_id, None):
                return False
        return True

    async def _process(self, record_id: int, passive: _PassiveReply | None) -> bool:
        """Answer one record and deliver the reply; False when Rasa is still unavailable."""
        record = await to_thread.run_sync(self._load, record_id)
        if record is None or record.done_at is not None:
            return True
        reply = await self._answer(record)
        if reply.status == "pending":
            return False
        channel = self.channels[record.channel]
        deliveries = await to_thread.run_sync(channel.render, record.sender_id, reply.language, reply.messages)
        # A passive reply must not overtake older messages still waiting in the outbox.
        if (passive is not None and deliveries and await to_thread.run_sync(self._nothing_queued, record.sender_id)
                and passive.offer(deliveries)):
            await to_thread.run_sync(self._done, record_id, reply.status)
            return True
        await self.outbox.enqueue(record.channel, record.sender_id, deliveries, dedup_prefix=f"in{record_id}")
        await to_thread.run_sync(self._done, record_id, reply.status)
        return True

    async def _answer(self, record: ChannelInbound) -> Reply:
        if record.reason is not None:
            return await to_thread.run_sync(self._notice, record)
        inbound = InboundMessage(
            sender_id=record.sender_id, channel=record.channel, text=record.text, payload=record.payload,
            language=record.language, message_id=f"{record.channel}:{record.external_id}",
        )
        try:
            result = await self.service.handle(inbound)
        except MessagePending as pending:
            await to_thread.run_sync(self._pending, record.id, str(pending))
            log.info("inbound pending until Rasa is back", extra={"record": record.id, "channel": record.channel})
            return Reply("pending", "en", None)
        known = await to_thread.run_sync(conversation_language, self.sessions, record.sender_id)
        script = known[1] if known is not None and result.language == "zh" else None
        return Reply("answered", result.language, script, list(result.messages))

    def _notice(self, record: ChannelInbound) -> Reply:
        language, script = self._language_for(record)
        if record.reason == "rate_limited_silent":
            return Reply("declined", language, script)
        values = {"limit": self.max_text_chars} if record.reason == "too_long" else {}
        text = notices.notice(record.reason or "unsupported", language, script, **values)
        return Reply("declined", language, script, [OutboundMessage(type="text", text=text)])

    def _language_for(self, record: ChannelInbound) -> tuple[str, str | None]:
        """Notice language: the conversation's, else the text's, else the channel's hint/default."""
        known = conversation_language(self.sessions, record.sender_id)
        if known is not None:
            return known
        if record.text and record.text.strip():
            detected = lang.detect(record.text[:500])
            if detected.language != "en" or record.language_hint is None:
                return detected.language, detected.script
        channel = self.channels.get(record.channel)
        return notices.pick_language(record.language_hint or (channel.default_language if channel else None))

    # --- retrying what Rasa could not answer ---------------------------------------------------
    async def retry_due(self) -> int:
        """One pass over customers with due unanswered messages; returns how many customers."""
        senders = await to_thread.run_sync(self._due_senders)
        for sender_id in senders:
            async with self.locks.hold(sender_id):
                await self._catch_up(sender_id)
        return len(senders)

    def start(self) -> None:
        """Start ``retry_loop`` in the background (``stop`` ends it)."""
        self.spawn(self.retry_loop())

    async def retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            try:
                await self.retry_due()
            except Exception:
                log.exception("inbound retry pass failed")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.locks.aclose()

    # --- storage steps (worker threads) ----------------------------------------------------------
    def _exists(self, channel: str, external_id: str) -> bool:
        with self.sessions() as db:
            return db.scalar(select(ChannelInbound.id).where(
                ChannelInbound.channel == channel, ChannelInbound.external_id == external_id)) is not None

    def _insert(self, msg: ChannelMessage, reason: str | None) -> int | None:
        now = _now()
        row = ChannelInbound(
            channel=msg.channel, external_id=msg.external_id, sender_id=msg.sender_id, text=msg.text,
            payload=msg.payload, language=msg.language, language_hint=msg.language_hint,
            status="received" if reason is None else "declined", reason=reason, attempts=0,
            next_attempt_at=now + timedelta(seconds=IN_FLIGHT_GRACE_S), created_at=now,
        )
        try:
            with transaction(self.sessions) as db:
                db.add(row)
                db.flush()
                return row.id
        except IntegrityError:
            return None  # the same update arrived twice at once: the other one handles it

    def _load(self, record_id: int) -> ChannelInbound | None:
        with self.sessions() as db:
            return db.get(ChannelInbound, record_id)

    def _outstanding(self, sender_id: str, before_id: int | None) -> list[int]:
        with self.sessions() as db:
            query = select(ChannelInbound.id).where(
                ChannelInbound.sender_id == sender_id,
                ChannelInbound.status.in_(("received", "pending", "declined")),
                ChannelInbound.done_at.is_(None),
            )
            if before_id is not None:
                query = query.where(ChannelInbound.id < before_id)
            return list(db.scalars(query.order_by(ChannelInbound.id)))

    def _due_senders(self) -> list[str]:
        with self.sessions() as db:
            return list(db.scalars(
                select(ChannelInbound.sender_id).where(
                    ChannelInbound.status.in_(("received", "pending", "declined")),
                    ChannelInbound.done_at.is_(None),
                    ChannelInbound.next_attempt_at <= _now(),
                ).distinct()
            ))

    def _nothing_queued(self, sender_id: str) -> bool:
        """True when no older outbound message for this customer is still waiting in the outbox."""
        with self.sessions() as db:
            return db.scalar(select(ChannelOutbox.id).where(
                ChannelOutbox.sender_id == sender_id, ChannelOutbox.status == "pending").limit(1)) is None

    def _pending(self, record_id: int, error: str) -> None:
        with transaction(self.sessions) as db:
            row = db.get_one(ChannelInbound, record_id)
            row.status, row.attempts, row.last_error = "pending", row.attempts + 1, error[:2000]
            row.next_attempt_at = _now() + timedelta(seconds=self.retry_s)

    def _done(self, record_id: int, status: str) -> None:
        with transaction(self.sessions) as db:
            db.execute(update(ChannelInbound).where(ChannelInbound.id == record_id).values(
                status="answered" if status == "answered" else "declined", done_at=_now()))
