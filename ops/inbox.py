"""The review inbox: collect the messages worth a look, group similar ones, act on them.

Collected (idempotently, from where each collector stopped last time):
- ``fallback`` / ``low_confidence``: turns whose intent was ``nlu_fallback`` or whose confidence was
  below ``ops_low_confidence`` (button clicks are skipped: they are not the customer's wording);
- ``kb_declined`` / ``kb_unhelpful``: knowledge-base replies that declined, or that the customer
  marked "Not what I need";
- ``handoff``: for every handoff ticket, the customer's last message before it (what the bot missed);
- ``rephrased``: a message the customer said again in other words within
  ``ops_rephrase_window_turns`` turns (e5 cosine ≥ ``ops_rephrase_similarity``): the earlier one is
  the item, since that is the wording the bot did not get.

Every text is redacted before it is stored here (``ops.redaction``): ``text`` with surrogates (what
an annotation writes to training data), ``masked`` with ``[TYPE]`` marks (what exports show).
Grouping (``ops.grouping``): per language and kind, by meaning, each group with the bot's top intent
guesses and the closest knowledge-base article, biggest first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api_errors import ApiError
from conversations.models import Conversation, KbAnswer, Message, Turn
from ops.annotations import AnnotationError, NluWriter
from ops.grouping import DEFAULT_ATTACH, DEFAULT_DISTANCE, Member, Reference, describe, embedding_text, group, item_kind
from ops.models import AuditEntry, Cursor, ReviewItem
from ops.redaction import Redactor
from settings import OpsSettings
from storage.db import get_or_raise, transaction

FALLBACK_INTENT = "nlu_fallback"
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "nlu_data"
# Intents whose messages are answers inside a form or small talk: repeating them ("yes", an order
# id typed twice) is not a rephrase of a question.
_NOT_QUESTIONS = frozenset({"inform", "affirm", "deny", "greet", "goodbye", "thanks", "kb_feedback", "kb_pick", "stop"})


class Embedder(Protocol):
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


class InboxError(ApiError):
    """A refused inbox action; ``status`` is the HTTP status the API answers with."""


@dataclass(frozen=True)
class InboxConfig:
    low_confidence: float = OpsSettings().low_confidence  # defaults: settings/sections.py
    rephrase_window_turns: int = OpsSettings().rephrase_window_turns
    rephrase_similarity: float = OpsSettings().rephrase_similarity
    # ops.grouping: cosine distance (centred e5 vectors) per language at which groups are cut, and
    # under which a message left alone joins its closest group (None: never).
    cluster_distance: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DISTANCE))
    cluster_attach: float | None = DEFAULT_ATTACH
    # Whose training examples give each language's centre: the shipped ones (the thresholds were
    # chosen with them), whatever directory annotations are written to.
    reference_dir: Path = REFERENCE_DIR


@dataclass(frozen=True)
class Filters:
    language: str | None = None
    channel: str | None = None
    intent: str | None = None
    source: str | None = None
    status: str = "open"
    since: date | None = None
    until: date | None = None  # inclusive

    def apply(self, query: Any) -> Any:
        if self.status != "all":
            query = query.where(ReviewItem.status == self.status)
        if self.language:
            query = query.where(ReviewItem.language == self.language)
        if self.channel:
            query = query.where(ReviewItem.channel == self.channel)
        if self.intent:
            query = query.where(ReviewItem.intent == self.intent)
        if self.source:
            query = query.where(ReviewItem.source == self.source)
        if self.since:
            query = query.where(ReviewItem.occurred_at >= datetime.combine(self.since, time.min, UTC))
        if self.until:
            query = query.where(ReviewItem.occurred_at <= datetime.combine(self.until, time.max, UTC))
        return query


@dataclass
class CollectReport:
    added: Counter[str] = field(default_factory=Counter)
    languages: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.added.values())


def _now() -> datetime:
    return datetime.now(UTC)


def _is_question_like(text: str) -> bool:
    """Long enough to be a wording worth learning (not "ok", "yes", an order id)."""
    han = len(re.findall(r"[\u4e00-\u9fff]", text))
    words = len(re.findall(r"[A-Za-zА-Яа-яЁё]+", text))
    return han >= 4 or words >= 3


def _vec(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)


class ReviewInbox:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        embedder: Embedder | Callable[[], Embedder],
        redactor: Redactor,
        writer: NluWriter,
        config: InboxConfig | None = None,
    ) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self.redactor = redactor
        self.writer = writer
        self.config = config or InboxConfig()
        # Each language's centre for grouping: the mean vector of a sample of its training examples.
        self.reference = Reference(self.config.reference_dir, lambda texts: self.embedder.embed_queries(texts))

    @property
    def embedder(self) -> Embedder:
        """The embedder may be given as a factory, so that starting the gateway loads no model."""
        if callable(self._embedder) and not hasattr(self._embedder, "embed_queries"):
            self._embedder = self._embedder()
        return self._embedder  # type: ignore[return-value]

    # --- collection ------------------------------------------------------------------------------
    def collect(self) -> CollectReport:
        """Read what is new since the last run; safe to call any time, from any process."""
        report = CollectReport()
        with transaction(self._sessions) as db:
            self._collect_turns(db, report)
            self._collect_kb(db, report)
            self._collect_handoffs(db, report)
        for language in report.languages:  # the grouping's centres, computed here rather than on a page load
            self.reference.centre(language)
        return report

    def _cursor(self, db: Session, name: str) -> Cursor:
        cur = db.get(Cursor, name)
        if cur is None:
            cur = Cursor(name=name, last_id=0)
            db.add(cur)
        return cur

    def _add(self, db: Session, report: CollectReport, *, source: str, key: str, text: str, language: str,
             sender_id: str, channel: str, occurred_at: datetime, message_id: int | None = None,
             conversation_id: int | None = None, intent: str | None = None, confidence: float | None = None,
             detail: dict[str, Any] | None = None, vector: np.ndarray | None = None) -> ReviewItem | None:
        if db.scalar(select(ReviewItem.id).where(ReviewItem.source_key == key)) is not None:
            return None
        red = self.redactor.redact(text, language, "surrogate")
        masked = self.redactor.redact(text, language, "mask").text
        if vector is None:  # embedded without the personal data (see ops.grouping.embedding_text)
            vector = self.embedder.embed_queries([embedding_text(masked, language)])[0]
        item = ReviewItem(
            source=source, source_key=key, message_id=message_id, conversation_id=conversation_id,
            sender_id=sender_id, channel=channel, language=language, intent=intent, confidence=confidence,
            text=red.text, masked=masked, pii=red.types, detail=detail or {},
            embedding=np.asarray(vector, dtype=np.float32).tobytes(), status="open", resolution={},
            occurred_at=occurred_at, created_at=_now(),
        )  # fmt: skip
        db.add(item)
        db.flush()
        report.added[source] += 1
        report.languages.add(language)
        return item

    def _collect_turns(self, db: Session, report: CollectReport) -> None:
        cur = self._cursor(db, "turns")
        rows = db.execute(
            select(Turn, Message).join(Message, Message.id == Turn.message_id)
            .where(Turn.id > cur.last_id).order_by(Turn.id)
        ).all()  # fmt: skip
        if not rows:
            return
        for turn, msg in rows:
            if msg.payload:
                continue
            low = turn.intent == FALLBACK_INTENT or (turn.confidence is not None and turn.confidence < self.config.low_confidence)
            if low and msg.text.strip():
                source = "fallback" if turn.intent == FALLBACK_INTENT else "low_confidence"
                ranking = [{"name": r.get("name"), "confidence": r.get("confidence")} for r in (turn.intent_ranking or [])[:3]]
                self._add(
                    db, report, source=source, key=f"turn:{turn.id}", text=msg.text, language=turn.language,
                    sender_id=self._sender(db, turn.conversation_id), channel=msg.channel, occurred_at=msg.created_at,
                    message_id=msg.id, conversation_id=turn.conversation_id, intent=turn.intent,
                    confidence=turn.confidence, detail={"ranking": ranking},
                )  # fmt: skip
            self._rephrase(db, report, turn, msg)
        cur.last_id = rows[-1][0].id

    def _rephrase(self, db: Session, report: CollectReport, turn: Turn, msg: Message) -> None:
        """Compare this message with the customer's previous few; the earlier one is the item."""
        if not _is_question_like(msg.text):
            return
        window = self.config.rephrase_window_turns
        earlier = db.execute(
            select(Turn, Message).join(Message, Message.id == Turn.message_id)
            .where(Turn.conversation_id == turn.conversation_id, Turn.id < turn.id)
            .order_by(Turn.id.desc()).limit(window)
        ).all()  # fmt: skip
        candidates = [(t, m) for t, m in earlier if not m.payload and _is_question_like(m.text) and t.intent not in _NOT_QUESTIONS]
        if not candidates:
            return
        vectors = self.embedder.embed_queries([msg.text, *[m.text for _, m in candidates]])
        sims = vectors[1:] @ vectors[0]
        best = int(np.argmax(sims))
        if float(sims[best]) < self.config.rephrase_similarity:
            return
        prev_turn, prev_msg = candidates[best]
        later = self.redactor.redact(msg.text, turn.language, "mask").text
        self._add(
            db, report, source="rephrased", key=f"rephrase:{prev_msg.id}", text=prev_msg.text, language=prev_turn.language,
            sender_id=self._sender(db, turn.conversation_id), channel=prev_msg.channel, occurred_at=prev_msg.created_at,
            message_id=prev_msg.id, conversation_id=turn.conversation_id, intent=prev_turn.intent,
            confidence=prev_turn.confidence,
            detail={"rephrase": later, "similarity": round(float(sims[best]), 4), "rephrase_intent": turn.intent,
                    "rephrase_confidence": turn.confidence},
        )  # fmt: skip

    @staticmethod
    def _sender(db: Session, conversation_id: int) -> str:
        return db.scalar(select(Conversation.sender_id).where(Conversation.id == conversation_id)) or ""

    def _collect_kb(self, db: Session, report: CollectReport) -> None:
        cur = self._cursor(db, "kb_answers")
        for row in db.scalars(select(KbAnswer).where(KbAnswer.id > cur.last_id, KbAnswer.outcome == "declined").order_by(KbAnswer.id)):
            self._add_kb(db, report, row, "kb_declined")
        # Feedback arrives after the answer, so "Not what I need" is looked up by its own flag.
        for row in db.scalars(select(KbAnswer).where(KbAnswer.helpful.is_(False)).order_by(KbAnswer.id)):
            self._add_kb(db, report, row, "kb_unhelpful")
        last = db.scalar(select(KbAnswer.id).order_by(KbAnswer.id.desc()).limit(1))
        if last:
            cur.last_id = last

    def _add_kb(self, db: Session, report: CollectReport, row: KbAnswer, source: str) -> None:
        conv = db.scalar(select(Conversation).where(Conversation.sender_id == row.sender_id))
        self._add(
            db, report, source=source, key=f"{source}:{row.id}", text=row.query, language=row.language,
            sender_id=row.sender_id, channel=conv.channel if conv else "unknown", occurred_at=row.created_at,
            conversation_id=conv.id if conv else None,
            detail={"kb_answer_id": row.id, "outcome": row.outcome, "article_id": row.article_id, "score": row.score},
        )  # fmt: skip

    def _collect_handoffs(self, db: Session, report: CollectReport) -> None:
        try:
            from handoff.models import Ticket
        except ImportError:  # handoff not installed in this deployment
            return
        cur = self._cursor(db, "tickets")
        tickets = list(db.scalars(select(Ticket).where(Ticket.id > cur.last_id).order_by(Ticket.id)))
        for ticket in tickets:
            found = last_question(db, ticket.conversation_id, ticket.created_at)
            if found is None:
                continue
            msg, turn = found
            self._add(
                db, report, source="handoff", key=f"ticket:{ticket.id}", text=msg.text, language=ticket.language,
                sender_id=ticket.sender_id, channel=ticket.channel, occurred_at=msg.created_at, message_id=msg.id,
                conversation_id=ticket.conversation_id, intent=turn.intent if turn else None,
                confidence=turn.confidence if turn else None,
                detail={"ticket_id": ticket.id, "reason": ticket.reason, "rule": ticket.rule},
            )  # fmt: skip
        if tickets:
            cur.last_id = tickets[-1].id

    # --- reading ---------------------------------------------------------------------------------
    def items(self, filters: Filters, limit: int = 500) -> list[ReviewItem]:
        with self._sessions() as db:
            query = filters.apply(select(ReviewItem)).order_by(ReviewItem.occurred_at.desc(), ReviewItem.id.desc())
            return list(db.scalars(query.limit(limit)))

    def item(self, item_id: int) -> ReviewItem:
        with self._sessions() as db:
            return get_or_raise(db, ReviewItem, item_id, InboxError(404, f"no review item {item_id}"))

    def clusters(self, filters: Filters, limit_items: int = 5000, kb: Any = None) -> list[dict[str, Any]]:
        """Groups to act on (``ops.grouping``), biggest first (ties: most recent first), each group's
        items most typical first. ``kb``: the knowledge base, to name each group's closest article
        (None: not shown)."""
        items = sorted(self.items(filters, limit_items), key=lambda i: i.id)
        vectors = [_vec(i.embedding) for i in items]
        members = [Member(i.language, item_kind(i.source, i.detail), i.masked, v) for i, v in zip(items, vectors, strict=True)]
        groups = group(members, self.reference.centre, self.config.cluster_distance, self.config.cluster_attach)
        name = getattr(self.embedder, "name", None) if kb is not None and items else None
        out = []
        for members_ in groups:
            its = [items[k] for k in members_]
            view, order = describe(its, [vectors[k] for k in members_], members[members_[0]].kind, self.reference.centre,
                                   kb, name)
            out.append({**view, "items": [item_view(its[k]) for k in order]})  # most typical first
        out.sort(key=lambda c: c["last_at"], reverse=True)
        out.sort(key=lambda c: -c["size"])  # stable: equal sizes stay most recent first
        return out

    # --- actions ---------------------------------------------------------------------------------
    def assign(self, item_ids: Sequence[int], intent: str, actor: str, *, new_intent: bool = False,
               entities: dict[int, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
        """Write each item's (redacted) text as an example of ``intent`` to nlu_data/<lang>/reviewed.yml."""
        entities = entities or {}
        with transaction(self._sessions) as db:
            items = self._open_items(db, item_ids)
            examples = []
            for item in items:
                spans = entities.get(item.id, [])
                try:
                    examples.append(self.writer.prepare(item.language, item.text, intent, spans, new_intent=new_intent))
                except AnnotationError as err:
                    raise InboxError(err.status, f"item {item.id}: {err}") from err
            written = self.writer.write(examples)
            now = _now()
            for item, ex, path in zip(items, examples, written, strict=True):
                item.status = "annotated"
                item.resolution = {"intent": intent, "entities": ex.entities, "file": path, "example": ex.markup,
                                   "new_intent": new_intent}
                item.resolved_by, item.resolved_at = actor, now
                db.add(AuditEntry(actor=actor, action="annotate", target=f"item:{item.id}",
                                  detail={"intent": intent, "file": path}, created_at=now))
            return [item_view(i) for i in items]

    def mark(self, item_ids: Sequence[int], status: str, actor: str, note: str = "") -> list[dict[str, Any]]:
        """``knowledge_gap`` (the KB should answer this) or ``dismissed`` (nothing to learn)."""
        if status not in ("knowledge_gap", "dismissed"):
            raise InboxError(422, f"unknown action {status!r}")
        with transaction(self._sessions) as db:
            items = self._open_items(db, item_ids)
            now = _now()
            for item in items:
                item.status, item.resolution = status, {"note": note}
                item.resolved_by, item.resolved_at = actor, now
                db.add(AuditEntry(actor=actor, action=status, target=f"item:{item.id}", detail={"note": note}, created_at=now))
            return [item_view(i) for i in items]

    def reopen(self, item_id: int, actor: str) -> dict[str, Any]:
        """Undo a dismissal or knowledge-gap mark (an annotation is undone by editing the YAML file)."""
        with transaction(self._sessions) as db:
            item = get_or_raise(db, ReviewItem, item_id, InboxError(404, f"no review item {item_id}"))
            if item.status not in ("dismissed", "knowledge_gap"):
                raise InboxError(409, f"item {item_id} is {item.status}; only dismissed or knowledge-gap items reopen")
            item.status, item.resolution, item.resolved_by, item.resolved_at = "open", {}, None, None
            db.add(AuditEntry(actor=actor, action="reopen", target=f"item:{item.id}", detail={}, created_at=_now()))
            return item_view(item)

    @staticmethod
    def _open_items(db: Session, item_ids: Sequence[int]) -> list[ReviewItem]:
        if not item_ids:
            raise InboxError(422, "no item ids given")
        ids = list(dict.fromkeys(item_ids))
        items = {i.id: i for i in db.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids)))}
        missing = [i for i in ids if i not in items]
        if missing:
            raise InboxError(404, f"no review item(s) {', '.join(map(str, missing))}")
        closed = [f"{i} ({items[i].status})" for i in ids if items[i].status != "open"]
        if closed:
            raise InboxError(409, f"item(s) already handled: {', '.join(closed)}")
        return [items[i] for i in ids]

    def export_rows(self, filters: Filters) -> list[dict[str, Any]]:
        """Rows for CSV export: masked text only, never the surrogate or raw text."""
        return [
            {"id": i.id, "source": i.source, "status": i.status, "language": i.language, "channel": i.channel,
             "intent": i.intent or "", "confidence": "" if i.confidence is None else round(i.confidence, 4),
             "text": i.masked, "pii": " ".join(i.pii), "occurred_at": i.occurred_at.isoformat(),
             "resolution_intent": (i.resolution or {}).get("intent", ""), "resolved_by": i.resolved_by or ""}
            for i in self.items(filters, limit=100_000)
        ]  # fmt: skip


def last_question(db: Session, conversation_id: int, before: datetime) -> tuple[Message, Turn | None] | None:
    """The customer's last worded message before ``before`` that was not just asking for a person."""
    rows = db.execute(
        select(Message, Turn).outerjoin(Turn, Turn.message_id == Message.id)
        .where(Message.conversation_id == conversation_id, Message.direction == "in", Message.created_at <= before)
        .order_by(Message.id.desc()).limit(10)
    ).all()  # fmt: skip
    fallback: tuple[Message, Turn | None] | None = None
    for msg, turn in rows:
        if msg.payload or not msg.text.strip():
            continue
        if turn is not None and turn.intent in ("human_handoff", *_NOT_QUESTIONS):
            fallback = fallback or (msg, turn)
            continue
        return msg, turn
    return fallback


def item_view(item: ReviewItem) -> dict[str, Any]:
    return {
        "id": item.id, "source": item.source, "status": item.status, "language": item.language,
        "channel": item.channel, "intent": item.intent, "confidence": item.confidence, "text": item.text,
        "masked": item.masked, "pii": item.pii, "detail": item.detail, "resolution": item.resolution,
        "resolved_by": item.resolved_by, "occurred_at": item.occurred_at.isoformat(),
        "sender_id": item.sender_id, "conversation_id": item.conversation_id, "message_id": item.message_id,
    }  # fmt: skip
