"""The conversation service: the one path every channel's message takes.

    store inbound (idempotent by client message id) → detect language → Rasa → store outbound
    and what the bot understood → return the replies

Messages are written before Rasa is asked, so a message that arrives while Rasa is down is kept
(status ``pending``) and the customer is told to retry; a retry with the same message id is
answered once, and an already answered id returns the stored replies instead of asking again.
The message id also goes to Rasa, which returns its stored answer instead of running the turn
again when it had answered before the gateway got the reply (bot/gateway_channel.py), and each
action runs once per message (bot/actions/runs.py). A message Rasa fails on (an error, a
timeout) ``max_attempts`` times is answered with an apology and the offer of a person instead of
being retried forever ahead of the customer's later messages.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from anyio import to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from conversations import confirm, requests, topic
from conversations import language as lang
from conversations.models import Conversation, Message, Turn
from conversations.rasa_client import RasaClient, RasaFailed, RasaReply, RasaUnavailable
from storage.coordination import LocalTurnLocks, TurnLocks
from storage.db import transaction

_CONV, _MSG, _TURN = Conversation.__table__, Message.__table__, Turn.__table__
log = logging.getLogger(__name__)
# Metadata keys only the gateway sets (a channel's are dropped): the client's address (the gateway's
# own limits), the text as typed, the help-centre query and the task a request was read as.
_GATEWAY_KEYS = frozenset({"client_address", "typed_text", topic.QUERY_KEY, requests.TASK_KEY})
GAVE_UP = "gateway_gave_up"  # the turn's action when Rasa failed on the message max_attempts times
# Its answer (Simplified Chinese is converted for Traditional conversations like every bot answer).
_GAVE_UP_TEXT = {
    "en": ("Sorry, something went wrong on my side with that message. You can rephrase it, or talk to a person.",
           "Talk to a person"),
    "zh": ("抱歉，处理这条消息时我这边出了问题。您可以换个说法，或者转人工客服。", "转人工客服"),
    "ru": ("Извините, при обработке этого сообщения у меня произошла ошибка. Сформулируйте иначе или обратитесь "
           "к сотруднику.", "Связаться с сотрудником"),
}

__all__ = ["ConversationService", "InboundMessage", "MessagePending", "OutboundMessage", "TurnResult"]


class MessagePending(Exception):
    """The message is stored but Rasa could not answer it; retry with ``message_id``."""

    def __init__(self, message_id: str, cause: RasaUnavailable) -> None:
        super().__init__(str(cause))
        self.message_id = message_id


@dataclass(frozen=True)
class InboundMessage:
    sender_id: str
    channel: str
    text: str | None = None
    payload: str | None = None  # a clicked button's payload, sent to Rasa instead of text
    language: str | None = None  # explicit choice by the customer or channel: wins over detection
    message_id: str | None = None
    # Facts the channel vouches for, passed to Rasa as message metadata (e.g. the widget's
    # {"verified_username": ...} for a signed-in customer whose id the host site signed).
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundMessage:
    type: str
    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)
    sources: list[dict[str, str]] = field(default_factory=list)
    agent: str | None = None  # type "agent": the display name of the person who wrote it

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "buttons": self.buttons, "sources": self.sources}


@dataclass(frozen=True)
class TurnResult:
    sender_id: str
    language: str
    state: str
    messages: list[OutboundMessage]
    duplicate: bool = False
    conversation_token: str | None = None  # first answer only: lets the customer read their conversation


def _now() -> datetime:
    return datetime.now(UTC)


def to_outbound(rasa_message: dict[str, Any], traditional: bool) -> OutboundMessage:
    """Rasa's collected message → our contract; Traditional Chinese conversations get converted text."""
    custom = rasa_message.get("custom") if isinstance(rasa_message.get("custom"), dict) else {}
    text = str(rasa_message.get("text") or custom.get("text") or "")
    buttons = [
        {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
        for b in rasa_message.get("buttons") or custom.get("buttons") or []
    ]
    if traditional:
        text = lang.to_traditional(text)
        buttons = [{**b, "title": lang.to_traditional(b["title"])} for b in buttons]
    sources = [{"title": str(s.get("title", "")), "url": str(s.get("url", ""))} for s in custom.get("sources") or []]
    if traditional:  # the help centre's Chinese articles are written in Simplified: titles too
        sources = [{**s, "title": lang.to_traditional(s["title"])} for s in sources]
    return OutboundMessage(type=str(custom.get("type") or "text"), text=text, buttons=buttons, sources=sources)


def end_at_handoff(outbound: list[OutboundMessage], state: str) -> list[OutboundMessage]:
    """The bot's reply ends with its handoff notice once the turn left the customer waiting for or
    talking to a person: a form interrupted by "get me a person" is continued by the dialogue rules
    after the notice, and its next question ("What's the order number?") must not follow "I'm
    connecting you with a person" in the same reply. Other turns are returned unchanged."""
    if state not in ("queued", "human"):
        return outbound
    last = max((i for i, m in enumerate(outbound) if m.type == "handoff"), default=None)
    return outbound if last is None else outbound[: last + 1]


class TurnHooks(Protocol):
    """What human handoff plugs into every turn (implemented by handoff.service.HandoffService)."""

    async def before_rasa(self, stored: _Stored, inbound: InboundMessage) -> TurnResult | str | None:
        """A TurnResult answers without Rasa; a str replaces the text sent to Rasa; None goes on."""

    async def after_turn(
        self, stored: _Stored, inbound: InboundMessage, turn: dict[str, Any], result: TurnResult
    ) -> TurnResult: ...

    def conversation_token(self, sender_id: str) -> str: ...


class ConversationService:
    def __init__(self, sessions: sessionmaker[Session], rasa: RasaClient, max_attempts: int = 3,
                 knowledge: Callable[[], topic.Answerer | None] | None = None,
                 turn_locks: TurnLocks | None = None) -> None:
        self._sessions = sessions
        self.rasa = rasa
        self.knowledge = knowledge  # the help centre, once loaded: a task or a problem it answers (topic.py)
        self.max_attempts = max(1, max_attempts)
        # Turns of one conversation are processed in order; different conversations in parallel. Across
        # gateway replicas on PostgreSQL too (storage/coordination.py: turn_locks_for(DATABASE_URL)).
        self.turn_locks: TurnLocks = turn_locks or LocalTurnLocks()
        self.hooks: TurnHooks | None = None  # set by the gateway when human handoff is wired
        self._in_flight = 0
        self._last_turn_end = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last customer turn ended (0 while one is in progress): background work
        such as the review inbox's collection waits for a quiet moment."""
        return 0.0 if self._in_flight else time.monotonic() - self._last_turn_end

    async def handle(self, inbound: InboundMessage) -> TurnResult:
        self._in_flight += 1
        try:
            return await self._handle(inbound)
        finally:
            self._in_flight -= 1
            self._last_turn_end = time.monotonic()

    async def _handle(self, inbound: InboundMessage) -> TurnResult:
        async with self.turn_locks.hold(inbound.sender_id):
            stored = await to_thread.run_sync(self._store_inbound, inbound)
            if stored.answered is not None:
                return stored.answered
            text_for_bot = inbound.payload or stored.nlu_text
            if self.hooks is not None:  # human handoff (handoff/service.py): may answer without Rasa
                early = await self.hooks.before_rasa(stored, inbound)
                if isinstance(early, TurnResult):
                    return self._with_token(stored, early)
                text_for_bot = early or text_for_bot
            started = time.perf_counter()
            # client_address (REST, widget) is for the gateway's own limits: kept out of Rasa's tracker.
            # typed_text is the gateway's own (below), never a channel's.
            metadata = {**{k: v for k, v in inbound.metadata.items() if k not in _GATEWAY_KEYS}, "language": stored.language}
            button = confirm.as_button(inbound.text or "", stored.last_buttons) if not inbound.payload else None
            if button is None and not inbound.payload and confirm.holds_off(inbound.text or "", stored.last_buttons):
                button = await self._plain_no(stored)
            if button and text_for_bot == stored.nlu_text:  # a typed "可以的 麻烦了🙏" to Yes/No buttons: the yes
                text_for_bot = button
            if not inbound.payload and text_for_bot != inbound.text:  # what is written to an order is as typed
                metadata["typed_text"] = inbound.text
            later: list[requests.Request] = []
            if not button and not inbound.payload and stored.state == "bot":  # "cancel X and also change the address on Y"
                now, later = await requests.first_request(self.rasa, text_for_bot)
                text_for_bot = now.for_bot(metadata)
                if not stored.active_loop:
                    text_for_bot = await topic.routed(self.rasa, self.knowledge, text_for_bot, inbound.text,
                                                      stored.language, metadata)
            try:
                reply = await self.rasa.send(inbound.sender_id, text_for_bot, metadata, stored.client_message_id)
            except RasaFailed as err:
                attempts = await to_thread.run_sync(self._failed_attempt, stored.message_id)
                if attempts < self.max_attempts:
                    raise MessagePending(stored.client_message_id, err) from err
                log.error("rasa failed on a message; answered with an apology", extra={
                    "sender_id": inbound.sender_id, "message_id": stored.client_message_id, "attempts": attempts,
                    "error": str(err)})  # fmt: skip
                reply = self._gave_up(stored)
            except RasaUnavailable as err:
                raise MessagePending(stored.client_message_id, err) from err
            else:
                reply = await self._next_request(stored, metadata, reply, later)
            latency_ms = (time.perf_counter() - started) * 1000
            result = await to_thread.run_sync(self._store_reply, stored, reply, latency_ms)
            if self.hooks is not None:
                result = self._with_token(stored, await self.hooks.after_turn(stored, inbound, reply.turn, result))
            return result

    async def _next_request(
        self, stored: _Stored, metadata: dict[str, Any], reply: RasaReply, later: list[requests.Request]
    ) -> RasaReply:
        """A message that asked for several things: the next request is handled as soon as the one
        before it is finished (no form left open), with a word to the customer; until then it is kept."""
        pending = later or [requests.Request.from_stored(item) for item in stored.pending or []]
        if not pending or reply.turn.get("active_loop") or stored.state != "bot":
            if later:
                await to_thread.run_sync(requests.keep, self._sessions, stored.conversation_id, later)
                reply.messages.append(requests.notice("later", stored.language, later[0].text))
            return reply
        await to_thread.run_sync(requests.keep, self._sessions, stored.conversation_id, pending[1:])
        try:
            # The typed text was the first request's; this one is routed as a first request is ("how long
            # until the money is back?" kept beside a refund is a help-centre question, not a status form).
            own = {k: v for k, v in metadata.items() if k not in _GATEWAY_KEYS}
            text = await topic.routed(self.rasa, self.knowledge, pending[0].for_bot(own), pending[0].text,
                                      stored.language, own)
            then = await self.rasa.send(stored.sender_id, text, own, f"{stored.client_message_id}:next")
        except (RasaFailed, RasaUnavailable):
            await to_thread.run_sync(requests.keep, self._sessions, stored.conversation_id, pending)  # next turn
            return reply
        if requests.repeats(reply.messages, then.messages):  # the first answer's article answered it too
            return RasaReply(messages=reply.messages, turn=requests.merge_turns(reply.turn, then.turn))
        messages = [*reply.messages, requests.notice("now", stored.language, pending[0].text), *then.messages]
        return RasaReply(messages=messages, turn=requests.merge_turns(reply.turn, then.turn))

    async def _plain_no(self, stored: _Stored) -> str | None:
        """The No button for a typed no to Yes/No buttons (``confirm.holds_off``) that the NLU reads as
        something that would leave the form (a wish for a person, out of scope…); a no it reads as a no,
        a detail or another task ("make it store credit instead", "don't change it, just cancel the
        order") reaches the form as typed, which reads corrections and changes of mind."""
        intent, _, _ = await self.rasa.parse(stored.nlu_text)
        return confirm.NO_PAYLOAD if intent in confirm.ESCAPING_INTENTS else None

    def _failed_attempt(self, message_id: int) -> int:
        """Count one failure of Rasa on this message; returns the failures so far."""
        with transaction(self._sessions) as db:
            conn = db.connection()
            conn.execute(_MSG.update().where(_MSG.c.id == message_id).values(attempts=_MSG.c.attempts + 1))
            return int(conn.execute(select(_MSG.c.attempts).where(_MSG.c.id == message_id)).scalar_one())

    @staticmethod
    def _gave_up(stored: _Stored) -> RasaReply:
        """The answer to a message Rasa keeps failing on: say so, and offer a person."""
        text, person = _GAVE_UP_TEXT.get(stored.language, _GAVE_UP_TEXT["en"])
        return RasaReply(
            messages=[{"text": text, "buttons": [{"title": person, "payload": "/human_handoff"}]}],
            turn={"intent": {}, "actions": [GAVE_UP]},
        )

    def _with_token(self, stored: _Stored, result: TurnResult) -> TurnResult:
        """The first answer of a conversation carries the customer's read token (handoff/tokens.py)."""
        if stored.created and self.hooks is not None:
            return replace(result, conversation_token=self.hooks.conversation_token(stored.sender_id))
        return result

    # --- storage steps (run in a worker thread) --------------------------------------------------
    # Core statements on the tables, not the ORM's unit of work: these two transactions run on every
    # customer turn and cost ~1.6 ms of CPU this way against ~2.4-3.6 ms through the ORM (raw
    # SQLite needs 0.04 ms; the rest is SQLAlchemy), bench/RESULTS.md "Load: ..." notes.
    def _store_inbound(self, inbound: InboundMessage) -> _Stored:
        with transaction(self._sessions) as db:
            conn = db.connection()
            conv = conn.execute(
                select(_CONV.c.id, _CONV.c.sender_id, _CONV.c.language, _CONV.c.script, _CONV.c.state,
                       _CONV.c.undelivered, _CONV.c.pending_requests).where(_CONV.c.sender_id == inbound.sender_id)
            ).first()  # fmt: skip
            previous = lang.Detected(conv.language, conv.script) if conv else None  # type: ignore[arg-type]
            if inbound.message_id and conv:
                existing = db.scalar(
                    select(Message).where(
                        Message.conversation_id == conv.id, Message.client_message_id == inbound.message_id
                    )
                )
                if existing is not None:
                    return self._replay(db, conv, existing)
            detected = self._language(inbound, previous)
            now = _now()
            if conv is None:
                conv_id = conn.execute(_CONV.insert().values(
                    sender_id=inbound.sender_id, channel=inbound.channel, language=detected.language,
                    script=detected.script, state="bot", undelivered=0, created_at=now, updated_at=now,
                )).inserted_primary_key[0]
                state, undelivered = "bot", 0
            else:
                conn.execute(_CONV.update().where(_CONV.c.id == conv.id).values(
                    language=detected.language, script=detected.script, updated_at=now))
                conv_id, state, undelivered = conv.id, conv.state, conv.undelivered or 0
            text = inbound.text if inbound.text is not None else (inbound.payload or "")
            # Without a client id we assign one, so that a retry after a 503 can name the message.
            client_id = inbound.message_id or f"srv-{uuid.uuid4().hex}"
            msg_id = conn.execute(_MSG.insert().values(
                conversation_id=conv_id, direction="in", status="pending", client_message_id=client_id,
                type="text", text=text, payload=inbound.payload, language=detected.language,
                channel=inbound.channel, created_at=now,
            )).inserted_primary_key[0]
            return _Stored(
                conv_id, msg_id, client_id, inbound.sender_id, detected, self._nlu_text(text, detected),
                state=state, undelivered=undelivered, created=conv is None, channel=inbound.channel,
                pending=conv.pending_requests if conv is not None else None,
                last_buttons=_last_buttons(conn, conv_id) if conv is not None else [],
                active_loop=conn.execute(select(_TURN.c.active_loop).where(_TURN.c.conversation_id == conv_id)
                                         .order_by(_TURN.c.id.desc()).limit(1)).scalar() if conv is not None else None,
            )

    def _replay(self, db: Session, conv: Any, inbound: Message) -> _Stored:
        """``conv``: the conversation's row (id, sender_id, language, script, state, undelivered)."""
        detected = lang.Detected(conv.language, conv.script)
        if inbound.status == "answered":
            replies = db.scalars(select(Message).where(Message.reply_to_id == inbound.id).order_by(Message.id))
            answered = TurnResult(
                sender_id=conv.sender_id, language=conv.language, state=conv.state, duplicate=True,
                messages=[
                    OutboundMessage(
                        type=m.type, text=m.text, buttons=(m.data or {}).get("buttons", []),
                        sources=(m.data or {}).get("sources", []),
                    )
                    for m in replies
                ],
            )
            return _Stored(conv.id, inbound.id, inbound.client_message_id or "", conv.sender_id, detected, "", answered)
        # Stored while Rasa was down: answer it now, once.
        first = db.scalar(select(func.min(Message.id)).where(Message.conversation_id == conv.id)) == inbound.id
        return _Stored(
            conv.id, inbound.id, inbound.client_message_id or "", conv.sender_id, detected,
            self._nlu_text(inbound.text, detected), state=conv.state, undelivered=conv.undelivered or 0, created=first,
            channel=inbound.channel,
        )

    def _store_reply(self, stored: _Stored, reply: RasaReply, latency_ms: float) -> TurnResult:
        traditional = stored.detected.language == "zh" and stored.detected.script == "hant"
        outbound = [to_outbound(m, traditional) for m in reply.messages]
        now = _now()
        turn = reply.turn
        intent = turn.get("intent") or {}
        with transaction(self._sessions) as db:
            conn = db.connection()
            # The state as the turn left it (a handoff action may have queued the conversation).
            state = conn.execute(select(_CONV.c.state).where(_CONV.c.id == stored.conversation_id)).scalar_one()
            outbound = end_at_handoff(outbound, state)
            conn.execute(_MSG.update().where(_MSG.c.id == stored.message_id).values(status="answered"))
            if outbound:
                conn.execute(_MSG.insert(), [
                    {"conversation_id": stored.conversation_id, "direction": "out", "reply_to_id": stored.message_id,
                     "status": None, "client_message_id": None, "payload": None,
                     "type": out.type, "text": out.text, "data": {"buttons": out.buttons, "sources": out.sources},
                     "language": stored.language, "channel": stored.channel, "created_at": now}
                    for out in outbound
                ])  # fmt: skip
            conn.execute(_TURN.insert().values(
                conversation_id=stored.conversation_id, message_id=stored.message_id, language=stored.language,
                intent=intent.get("name"), confidence=intent.get("confidence"),
                intent_ranking=turn.get("intent_ranking") or [], entities=turn.get("entities") or [],
                actions=turn.get("actions") or [], slots=turn.get("slots") or {},
                active_loop=turn.get("active_loop"), latency_ms=latency_ms, created_at=now,
            ))
            conn.execute(_CONV.update().where(_CONV.c.id == stored.conversation_id).values(updated_at=now))
        return TurnResult(sender_id=stored.sender_id, language=stored.language, state=state, messages=outbound)

    # --- language ---------------------------------------------------------------------------
    @staticmethod
    def _language(inbound: InboundMessage, previous: lang.Detected | None) -> lang.Detected:
        if inbound.language:
            script = None
            if inbound.language == "zh" and inbound.text:
                script = lang.chinese_script(inbound.text)
            return lang.Detected(inbound.language, script)  # type: ignore[arg-type]
        if inbound.text is None:  # a button click says nothing about the language
            return previous or lang.Detected("en", None)
        return lang.detect(inbound.text, previous)

    @staticmethod
    def _nlu_text(text: str, detected: lang.Detected) -> str:
        """What the bot reads: the request behind a leading greeting or thanks, order numbers as plain
        digits, Traditional Chinese as Simplified (written Cantonese in Mandarin words)."""
        text = lang.normalise_ids(lang.strip_pleasantry(text))
        return lang.to_mandarin(text) if detected.language == "zh" and detected.script == "hant" else text

    # --- reads -----------------------------------------------------------------------------
    def transcript(self, sender_id: str) -> list[dict[str, Any]]:
        with self._sessions() as db:
            conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
            if conv is None:
                return []
            return [
                {"id": m.id, "direction": m.direction, "type": m.type, "text": m.text, "status": m.status,
                 "client_message_id": m.client_message_id, "buttons": (m.data or {}).get("buttons", []),
                 "sources": (m.data or {}).get("sources", []), "agent": (m.data or {}).get("agent"),
                 "language": m.language, "channel": m.channel, "created_at": m.created_at.isoformat()}
                for m in conv.messages
            ]

    def conversation_state(self, sender_id: str) -> tuple[str, str] | None:
        """(state, language) of the sender's conversation, None before its first message."""
        with self._sessions() as db:
            row = db.execute(
                select(Conversation.state, Conversation.language).where(Conversation.sender_id == sender_id)
            ).first()
            return (row[0], row[1]) if row else None


def _last_buttons(conn: Any, conversation_id: int) -> list[dict[str, Any]]:
    """The buttons of the bot's last answer (its last message that had any), for a typed yes."""
    rows = conn.execute(
        select(_MSG.c.data, _MSG.c.reply_to_id).where(_MSG.c.conversation_id == conversation_id, _MSG.c.direction == "out")
        .order_by(_MSG.c.id.desc()).limit(4)
    ).all()  # fmt: skip
    for data, reply_to in rows:
        if reply_to != rows[0].reply_to_id:
            break
        if isinstance(data, dict) and data.get("buttons"):
            return list(data["buttons"])
    return []


@dataclass(frozen=True)
class _Stored:
    conversation_id: int
    message_id: int
    client_message_id: str
    sender_id: str
    detected: lang.Detected
    nlu_text: str
    answered: TurnResult | None = None
    state: str = "bot"  # the conversation's state when the message arrived
    undelivered: int = 0  # messages waiting for a customer whose channel cannot push
    created: bool = False  # this message started the conversation
    pending: list[Any] | None = None  # requests kept from an earlier message (conversations/requests.py)
    channel: str = ""  # the inbound message's channel; its replies are stored on the same one
    last_buttons: list[dict[str, Any]] = field(default_factory=list)  # the bot's last message's buttons
    active_loop: str | None = None  # the form the bot's last turn left open

    @property
    def language(self) -> str:
        return self.detected.language
