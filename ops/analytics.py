"""Analytics computed from stored data only (messages, turns, kb_answers, handoff_tickets).

The definitions are in README "Analytics definitions"; this module is their one implementation:

- A **session** is one customer's (one sender id's) run of messages with no gap longer than
  ``session_gap`` (default 30 min). It belongs to the day (UTC), language and channel of its first
  customer message. It has **ended** ("the customer left") once ``session_gap`` has passed since its
  last message.
- **handed off**: a handoff ticket was created for the conversation during the session.
  **contained** = not handed off.
- positive signal: a KB answer in the session marked "That helped", or a ticket CSAT ≥ 4.
  negative signal: a KB answer marked "Not what I need", a declined KB answer, or the session's last
  bot turn was an NLU fallback.
- **confirmed resolution** = contained and a positive signal. **assumed resolution** = contained,
  ended, no negative signal and not confirmed. **resolution** = confirmed + assumed.
- **durable resolution**: a resolution after which the same sender starts no new session and no
  ticket within ``durable_days`` (default 7). Only sessions whose window has passed are judged
  (``durable_judged``); the rate is durable / judged.
- **deflection rate** = resolutions / ended sessions.
- **handoff rate** = handed-off sessions / sessions; tickets are also counted per reason.
- KB: **answer rate** = answered / KB replies, **decline rate** = declined / KB replies,
  **helpfulness** = "That helped" / answers with feedback.
- intents: turns per intent and their mean confidence.
- **CSAT**: mean score (1-5) and share ≥ 4 of tickets rated in the period.
- handed-off chats: **time to first agent reply** (ticket created → first agent message) and **time
  to resolution** (ticket created → closed as resolved), medians and means in seconds.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from conversations.models import Conversation, KbAnswer, Message, Turn
from ops import csv_export
from settings import OpsSettings

DIMENSIONS = ("day", "language", "channel")
FALLBACK = "nlu_fallback"


@dataclass
class Bucket:
    """Raw counts for one (day, language, channel) group; rates are derived from these."""

    sessions: int = 0
    ended: int = 0
    handed_off: int = 0
    contained: int = 0
    confirmed: int = 0
    assumed: int = 0
    durable: int = 0
    durable_judged: int = 0
    tickets: int = 0
    tickets_by_reason: Counter[str] = field(default_factory=Counter)
    kb_replies: int = 0
    kb_answered: int = 0
    kb_declined: int = 0
    kb_clarified: int = 0
    kb_feedback: int = 0
    kb_helpful: int = 0
    turns: int = 0
    intents: Counter[str] = field(default_factory=Counter)
    intent_confidence: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    csat: list[int] = field(default_factory=list)
    first_reply_s: list[float] = field(default_factory=list)
    resolution_s: list[float] = field(default_factory=list)

    def add(self, other: Bucket) -> None:
        for name in ("sessions", "ended", "handed_off", "contained", "confirmed", "assumed", "durable", "durable_judged",
                     "tickets", "kb_replies", "kb_answered", "kb_declined", "kb_clarified", "kb_feedback", "kb_helpful",
                     "turns"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.tickets_by_reason.update(other.tickets_by_reason)
        self.intents.update(other.intents)
        for k, v in other.intent_confidence.items():
            self.intent_confidence[k].extend(v)
        self.csat += other.csat
        self.first_reply_s += other.first_reply_s
        self.resolution_s += other.resolution_s

    def metrics(self) -> dict[str, Any]:
        resolutions = self.confirmed + self.assumed
        return {
            "sessions": self.sessions, "ended_sessions": self.ended, "contained": self.contained,
            "containment_rate": _rate(self.contained, self.sessions),
            "handed_off": self.handed_off, "handoff_rate": _rate(self.handed_off, self.sessions),
            "confirmed_resolutions": self.confirmed, "confirmed_resolution_rate": _rate(self.confirmed, self.sessions),
            "assumed_resolutions": self.assumed, "assumed_resolution_rate": _rate(self.assumed, self.sessions),
            "resolutions": resolutions, "deflection_rate": _rate(resolutions, self.ended),
            "durable_resolutions": self.durable, "durable_judged": self.durable_judged,
            "durable_resolution_rate": _rate(self.durable, self.durable_judged),
            "tickets": self.tickets, "tickets_by_reason": dict(sorted(self.tickets_by_reason.items())),
            "handoff_rate_by_reason": {k: _rate(v, self.sessions) for k, v in sorted(self.tickets_by_reason.items())},
            "kb_replies": self.kb_replies, "kb_answered": self.kb_answered, "kb_declined": self.kb_declined,
            "kb_answer_rate": _rate(self.kb_answered, self.kb_replies), "kb_decline_rate": _rate(self.kb_declined, self.kb_replies),
            "kb_feedback": self.kb_feedback, "kb_helpful": self.kb_helpful,
            "kb_helpfulness_rate": _rate(self.kb_helpful, self.kb_feedback),
            "turns": self.turns,
            "intents": {k: {"count": v, "mean_confidence": _mean(self.intent_confidence[k])}
                        for k, v in self.intents.most_common()},
            "csat_count": len(self.csat), "csat_mean": _mean(self.csat),
            "csat_satisfied_rate": _rate(sum(1 for s in self.csat if s >= 4), len(self.csat)),
            "first_agent_reply_s_median": _median(self.first_reply_s), "first_agent_reply_s_mean": _mean(self.first_reply_s),
            "resolution_s_median": _median(self.resolution_s), "resolution_s_mean": _mean(self.resolution_s),
        }  # fmt: skip


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _mean(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    return round(statistics.fmean(xs), 4) if xs else None


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _created_between(
    db: Session, stmt: Select[Any], created_at: InstrumentedAttribute[datetime], lo: datetime, hi: datetime
) -> Sequence[Row[Any]]:
    """The rows of ``stmt`` whose ``created_at`` lies in lo..hi (the column holds naive UTC)."""
    return db.execute(stmt.where(created_at >= lo.replace(tzinfo=None), created_at <= hi.replace(tzinfo=None))).all()


@dataclass(frozen=True)
class AnalyticsConfig:
    session_gap: timedelta = timedelta(minutes=OpsSettings().session_gap_min)  # defaults: settings/sections.py
    durable_days: int = OpsSettings().durable_days


@dataclass
class _Session:
    conversation_id: int
    sender_id: str
    start: datetime
    end: datetime
    language: str
    channel: str
    last_intent: str | None = None


class Analytics:
    def __init__(self, sessions: sessionmaker[Session], config: AnalyticsConfig | None = None) -> None:
        self._sessions = sessions
        self.config = config or AnalyticsConfig()

    def report(self, since: date | None = None, until: date | None = None, group_by: Iterable[str] = DIMENSIONS,
               now: datetime | None = None) -> dict[str, Any]:
        """Rows per group (any of day, language, channel) and the totals, for days since..until (inclusive)."""
        dims = tuple(d for d in DIMENSIONS if d in set(group_by))
        unknown = set(group_by) - set(DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown dimension(s): {', '.join(sorted(unknown))}; use {', '.join(DIMENSIONS)}")
        now = now or datetime.now(UTC)
        lo = datetime.combine(since, time.min, UTC) if since else datetime.min.replace(tzinfo=UTC)
        hi = datetime.combine(until, time.max, UTC) if until else datetime.max.replace(tzinfo=UTC)
        buckets: defaultdict[tuple[str, ...], Bucket] = defaultdict(Bucket)

        def key(day: date, language: str, channel: str) -> tuple[str, ...]:
            values = {"day": day.isoformat(), "language": language, "channel": channel}
            return tuple(values[d] for d in dims)

        with self._sessions() as db:
            self._sessions_metrics(db, lo, hi, now, buckets, key)
            self._kb_metrics(db, lo, hi, buckets, key)
            self._turn_metrics(db, lo, hi, buckets, key)
            self._ticket_metrics(db, lo, hi, buckets, key)
        total = Bucket()
        for b in buckets.values():
            total.add(b)
        rows = [{**dict(zip(dims, k, strict=True)), **b.metrics()} for k, b in sorted(buckets.items())]
        return {"group_by": list(dims), "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None, "rows": rows, "total": total.metrics(),
                "definitions": "README.md#analytics-definitions"}

    # --- sessions ----------------------------------------------------------------------------------
    def _all_sessions(self, db: Session) -> list[_Session]:
        gap = self.config.session_gap
        out: list[_Session] = []
        rows = db.execute(
            select(Message.conversation_id, Conversation.sender_id, Message.direction, Message.created_at,
                   Message.language, Message.channel, Turn.intent)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(Turn, Turn.message_id == Message.id)
            .order_by(Message.conversation_id, Message.created_at, Message.id)
        ).all()  # fmt: skip
        current: _Session | None = None
        for conv_id, sender, direction, at, language, channel, intent in rows:
            at = _aware(at)
            if current is None or current.conversation_id != conv_id or at - current.end > gap:
                if direction != "in":  # a session starts with the customer
                    if current is not None and current.conversation_id == conv_id:
                        current.end = max(current.end, at)
                    continue
                current = _Session(conv_id, sender, at, at, language, channel)
                out.append(current)
            current.end = max(current.end, at)
            if direction == "in" and intent is not None:
                current.last_intent = intent
        return out

    def _sessions_metrics(self, db: Session, lo: datetime, hi: datetime, now: datetime,
                          buckets: defaultdict[tuple[str, ...], Bucket], key: Any) -> None:
        sessions = self._all_sessions(db)
        tickets = self._tickets(db)
        kb = list(db.execute(select(KbAnswer.sender_id, KbAnswer.created_at, KbAnswer.outcome, KbAnswer.helpful,
                                    KbAnswer.feedback_at)).all())
        by_sender_sessions: defaultdict[str, list[_Session]] = defaultdict(list)
        for s in sessions:
            by_sender_sessions[s.sender_id].append(s)
        by_conv_tickets: defaultdict[int, list[Any]] = defaultdict(list)
        by_sender_tickets: defaultdict[str, list[Any]] = defaultdict(list)
        for t in tickets:
            by_conv_tickets[t.conversation_id].append(t)
            by_sender_tickets[t.sender_id].append(t)
        kb_by_sender: defaultdict[str, list[Any]] = defaultdict(list)
        for row in kb:
            kb_by_sender[row.sender_id].append(row)
        gap = self.config.session_gap
        window = timedelta(days=self.config.durable_days)
        for s in sessions:
            if not lo <= s.start <= hi:
                continue
            b = buckets[key(s.start.date(), s.language, s.channel)]
            b.sessions += 1
            ended = now - s.end > gap
            b.ended += ended
            # A ticket belongs to the session it was created in (up to the gap after its last message).
            in_session = [t for t in by_conv_tickets[s.conversation_id] if s.start <= _aware(t.created_at) <= s.end + gap]
            handed = bool(in_session)
            b.handed_off += handed
            b.contained += not handed
            kb_rows = [r for r in kb_by_sender[s.sender_id] if s.start <= _aware(r.created_at) <= s.end + gap]
            positive = any(r.helpful is True for r in kb_rows) or any((t.csat_score or 0) >= 4 for t in in_session)
            negative = (any(r.helpful is False or r.outcome == "declined" for r in kb_rows) or s.last_intent == FALLBACK)
            confirmed = not handed and positive
            assumed = not handed and ended and not negative and not confirmed
            b.confirmed += confirmed
            b.assumed += assumed
            if (confirmed or assumed) and now - s.end >= window:
                b.durable_judged += 1
                later_session = any(o is not s and s.end < o.start <= s.end + window for o in by_sender_sessions[s.sender_id])
                later_ticket = any(s.end < _aware(t.created_at) <= s.end + window for t in by_sender_tickets[s.sender_id])
                b.durable += not (later_session or later_ticket)

    @staticmethod
    def _tickets(db: Session) -> list[Any]:
        try:
            from handoff.models import Ticket
        except ImportError:
            return []
        return list(db.scalars(select(Ticket)))

    def _kb_metrics(self, db: Session, lo: datetime, hi: datetime, buckets: defaultdict[tuple[str, ...], Bucket], key: Any) -> None:
        stmt = select(KbAnswer.created_at, KbAnswer.language, Conversation.channel, KbAnswer.outcome, KbAnswer.helpful)
        stmt = stmt.outerjoin(Conversation, Conversation.sender_id == KbAnswer.sender_id)
        for at, language, channel, outcome, helpful in _created_between(db, stmt, KbAnswer.created_at, lo, hi):
            b = buckets[key(_aware(at).date(), language, channel or "unknown")]
            b.kb_replies += 1
            b.kb_answered += outcome == "answered"
            b.kb_declined += outcome == "declined"
            b.kb_clarified += outcome == "clarified"
            if outcome == "answered" and helpful is not None:
                b.kb_feedback += 1
                b.kb_helpful += bool(helpful)

    def _turn_metrics(self, db: Session, lo: datetime, hi: datetime, buckets: defaultdict[tuple[str, ...], Bucket], key: Any) -> None:
        stmt = select(Turn.created_at, Turn.language, Message.channel, Turn.intent, Turn.confidence)
        stmt = stmt.join(Message, Message.id == Turn.message_id)
        for at, language, channel, intent, confidence in _created_between(db, stmt, Turn.created_at, lo, hi):
            b = buckets[key(_aware(at).date(), language, channel)]
            b.turns += 1
            name = intent or "(none)"
            b.intents[name] += 1
            if confidence is not None:
                b.intent_confidence[name].append(float(confidence))

    def _ticket_metrics(self, db: Session, lo: datetime, hi: datetime, buckets: defaultdict[tuple[str, ...], Bucket], key: Any) -> None:
        for t in self._tickets(db):
            created = _aware(t.created_at)
            if lo <= created <= hi:
                b = buckets[key(created.date(), t.language, t.channel)]
                b.tickets += 1
                b.tickets_by_reason[t.reason] += 1
                first = db.scalar(
                    select(Message.created_at).where(Message.conversation_id == t.conversation_id, Message.type == "agent",
                                                     Message.created_at >= t.created_at).order_by(Message.id).limit(1)
                )  # fmt: skip
                if first is not None:
                    b.first_reply_s.append((_aware(first) - created).total_seconds())
                if t.status == "resolved" and t.closed_at is not None:
                    b.resolution_s.append((_aware(t.closed_at) - created).total_seconds())
            if t.csat_score is not None and t.csat_at is not None and lo <= _aware(t.csat_at) <= hi:
                rated = _aware(t.csat_at)
                buckets[key(rated.date(), t.language, t.channel)].csat.append(int(t.csat_score))


CSV_COLUMNS = [
    "sessions", "ended_sessions", "contained", "containment_rate", "handed_off", "handoff_rate", "confirmed_resolutions",
    "confirmed_resolution_rate", "assumed_resolutions", "assumed_resolution_rate", "resolutions", "deflection_rate",
    "durable_resolutions", "durable_judged", "durable_resolution_rate", "tickets", "kb_replies", "kb_answered",
    "kb_declined", "kb_answer_rate", "kb_decline_rate", "kb_feedback", "kb_helpful", "kb_helpfulness_rate", "turns",
    "csat_count", "csat_mean", "csat_satisfied_rate", "first_agent_reply_s_median", "first_agent_reply_s_mean",
    "resolution_s_median", "resolution_s_mean",
]  # fmt: skip


def csv_text(report: dict[str, Any]) -> str:
    """One CSV line per group; nested figures (tickets per reason, intents) as ``name=value;...``.
    Cells that a spreadsheet would run as a formula are quoted (``ops.csv_export``)."""
    dims = report["group_by"]
    rows = [
        [*[row[d] for d in dims], *[row[c] for c in CSV_COLUMNS],
         ";".join(f"{k}={v}" for k, v in row["tickets_by_reason"].items()),
         ";".join(f"{k}={v['count']}" for k, v in row["intents"].items())]
        for row in [*report["rows"], {**dict.fromkeys(dims, "TOTAL"), **report["total"]}]
    ]  # fmt: skip
    return csv_export.csv_text([*dims, *CSV_COLUMNS, "tickets_by_reason", "intents"], rows)


def prometheus_text(report: dict[str, Any]) -> bytes:
    """The totals per language and channel (all time) in Prometheus' text format."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    labels = ["language", "channel"]
    gauges = {
        name: Gauge(f"supportbot_{name}", help_text, labels, registry=registry)
        for name, help_text in {
            "sessions": "Customer sessions (README: Analytics definitions)",
            "contained": "Sessions that ended without a handoff",
            "handed_off": "Sessions handed off to a person",
            "confirmed_resolutions": "Contained sessions where the customer said it helped",
            "assumed_resolutions": "Contained, ended sessions without a negative signal",
            "durable_resolutions": "Resolutions with no new session or ticket within the durable window",
            "kb_replies": "Knowledge-base replies (answered, clarified, declined)",
            "kb_answered": "Knowledge-base answers",
            "kb_declined": "Knowledge-base declines",
            "kb_helpful": "Knowledge-base answers marked helpful",
            "tickets": "Handoff tickets",
            "turns": "Customer turns understood by the NLU",
            "csat_count": "CSAT ratings received",
        }.items()
    }  # fmt: skip
    csat_mean = Gauge("supportbot_csat_mean", "Mean CSAT score (1-5)", labels, registry=registry)
    tickets_reason = Gauge("supportbot_tickets_by_reason", "Handoff tickets per reason", [*labels, "reason"], registry=registry)
    for row in report["rows"]:
        lv = (row.get("language", ""), row.get("channel", ""))
        for name, gauge in gauges.items():
            gauge.labels(*lv).set(row[name] or 0)
        if row["csat_mean"] is not None:
            csat_mean.labels(*lv).set(row["csat_mean"])
        for reason, n in row["tickets_by_reason"].items():
            tickets_reason.labels(*lv, reason).set(n)
    return generate_latest(registry)
