"""Read-only access to the system under test's database: what the bot understood, KB answers,
handoff tickets, and the demo store's orders (for order pools and after-the-fact store checks).

The gateway writes every turn to its conversation store, so the runner reads the understanding
there instead of asking for a debug API. Nothing here writes: SQLite connections are opened with
``PRAGMA query_only``. Tables that a deployment does not have yet (``kb_answers``,
``handoff_tickets``) read as absent, and the checks that need them say so.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.orm import Session

from conversations.models import Conversation, Message
from scenarios.effects import WRITE_ACTIONS, order_ids_in
from scenarios.observed import Understood, json_value
from scenarios.pools import POOLS, Candidate, matches
from store.models import Customer, Order, OutboxEmail, Refund, ReturnRequest
from store.seed import DEMO

_UNDERSTOOD = text(
    "select t.intent, t.confidence, t.intent_ranking, t.entities, t.slots, t.actions, t.active_loop "
    "from turns t join messages m on m.id = t.message_id join conversations c on c.id = m.conversation_id "
    "where c.sender_id = :sender and m.client_message_id = :mid"
)


class PoolExhausted(Exception):
    """No unreserved order of the kind a scenario needs is left in this database."""


def read_only_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _query_only(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA query_only = ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class SystemDatabase:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = read_only_engine(url)
        self._tables: set[str] | None = None
        self._lock = threading.Lock()
        self._reserved: set[str] = set()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def tables(self) -> set[str]:
        if self._tables is None:
            self._tables = set(inspect(self.engine).get_table_names())
        return self._tables

    def has(self, table: str) -> bool:
        if table not in self.tables:
            self._tables = None  # a migration may have run since we looked
        return table in self.tables

    # --- conversations -----------------------------------------------------------------------
    def understood(self, sender_id: str, client_message_id: str) -> Understood | None:
        with self.engine.connect() as conn:
            row = conn.execute(_UNDERSTOOD, {"sender": sender_id, "mid": client_message_id}).first()
        if row is None:
            return None
        return Understood(
            intent=row[0], confidence=row[1], intent_ranking=json_value(row[2]) or [],
            entities=json_value(row[3]) or [], slots=json_value(row[4]) or {}, actions=json_value(row[5]) or [],
            active_loop=row[6],
        )

    def kb_rows(self, sender_id: str) -> list[dict[str, Any]]:
        """The knowledge base's record of its answers in this conversation (empty without a KB)."""
        if not self.has("kb_answers"):
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("select id, outcome, article_id, article_language, helpful from kb_answers "
                     "where sender_id = :s order by id"), {"s": sender_id},
            ).mappings().all()
        return [{**r, "helpful": None if r["helpful"] is None else bool(r["helpful"])} for r in rows]

    def tickets(self, sender_id: str) -> list[dict[str, Any]] | None:
        """Handoff tickets of this conversation; None where the handoff is not deployed."""
        if not self.has("handoff_tickets"):
            return None
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("select id, status, reason, rule, queue, topic, priority, csat_score from handoff_tickets "
                     "where sender_id = :s order by id"),
                {"s": sender_id},
            ).mappings().all()
        return [dict(r) for r in rows]

    def open_ticket(self, sender_id: str) -> tuple[int, str] | None:
        """(id, status) of the conversation's ticket waiting for or owned by a person."""
        if not self.has("handoff_tickets"):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                text("select id, status from handoff_tickets where sender_id = :s and status in ('queued', 'assigned') "
                     "order by id desc"), {"s": sender_id},
            ).first()
        return (int(row[0]), str(row[1])) if row else None

    def last_message_id(self, sender_id: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                text("select max(m.id) from messages m join conversations c on c.id = m.conversation_id "
                     "where c.sender_id = :s"), {"s": sender_id},
            ).scalar()
        return int(value or 0)

    def first_message_at(self, sender_id: str) -> datetime | None:
        with Session(self.engine) as db:
            return db.scalar(select(func.min(Message.created_at)).join(Conversation, Conversation.id == Message.conversation_id)
                             .where(Conversation.sender_id == sender_id))

    def write_runs(self, sender_id: str) -> list[tuple[str, list[str]]]:
        """(action, order ids its stored result names) for this sender's write actions (``action_runs``)."""
        if not self.has("action_runs"):
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(text("select action, result from action_runs where sender_id = :s"), {"s": sender_id}).all()
        return [(str(a), order_ids_in(json_value(r))) for a, r in rows if a in WRITE_ACTIONS]

    # --- the store -----------------------------------------------------------------------------
    def password_reset_emails(self, identifiers: Iterable[str], since: datetime | None) -> list[str]:
        """Addresses of password-reset emails written since ``since`` to accounts with these emails/usernames."""
        wanted = sorted({i.casefold() for i in identifiers})
        if not wanted:
            return []
        with Session(self.engine) as db:
            emails = list(db.scalars(select(Customer.email).where(
                func.lower(Customer.email).in_(wanted) | func.lower(Customer.username).in_(wanted))))
            if not emails:
                return []
            query = select(OutboxEmail.to_address).where(OutboxEmail.kind == "password_reset", OutboxEmail.to_address.in_(emails))
            if since is not None:
                query = query.where(OutboxEmail.created_at >= since)
            return list(db.scalars(query.order_by(OutboxEmail.id)))

    def watched_orders(self, reserved: Iterable[str]) -> list[str]:
        """For ``other_orders_unchanged``: the DEMO orders and every order of the reserved orders'
        customers, except orders that this runner reserved for any scenario."""
        mine = list(reserved)
        with Session(self.engine) as db:
            owners = select(Order.customer_id).where(Order.order_id.in_(mine))
            ids = set(db.scalars(select(Order.order_id).where(Order.customer_id.in_(owners))))
        ids |= {d.order_id for d in DEMO.values()}
        with self._lock:
            return sorted(ids - self._reserved - set(mine))

    def order_snapshot(self, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Status, address, refund and return rows of these orders, as comparable plain values."""
        wanted = list(order_ids)
        with Session(self.engine) as db:
            orders = {o.order_id: o for o in db.scalars(select(Order).where(Order.order_id.in_(wanted)))}
            refunds = db.scalars(select(Refund).where(Refund.order_id.in_(wanted)).order_by(Refund.id))
            returns = db.scalars(select(ReturnRequest).where(ReturnRequest.order_id.in_(wanted)).order_by(ReturnRequest.id))
            snap: dict[str, dict[str, Any]] = {
                i: {"status": o.status, "shipping_address": o.shipping_address, "refunds": [], "returns": []}
                for i, o in orders.items()}
            for r in refunds:
                snap[r.order_id]["refunds"].append((r.id, str(r.amount), r.method, r.reason, r.status))
            for r in returns:
                snap[r.order_id]["returns"].append((r.id, r.reason, r.rma_code, r.status))
        return snap

    def _candidates(self, exclude: Iterable[str]) -> list[Candidate]:
        skip = set(exclude)
        refunds = select(func.count()).where(Refund.order_id == Order.order_id).scalar_subquery()
        returns = select(func.count()).where(ReturnRequest.order_id == Order.order_id).scalar_subquery()
        query = (
            select(Order, Customer, refunds, returns)
            .join(Customer, Customer.id == Order.customer_id)
            .order_by(Order.order_id.desc())  # the far end from tests that take the first match
        )
        with Session(self.engine) as db:
            rows = db.execute(query).all()
        return [
            Candidate(
                order_id=o.order_id, status=o.status, membership=c.membership_level, ordered_at=o.ordered_at,
                delivered_at=o.delivered_at, total=o.total, refunds=int(nref), returns=int(nret), username=c.username,
                email=c.email, full_name=c.full_name, tracking_number=o.tracking_number, carrier=o.carrier,
                shipping_address=o.shipping_address,
            )
            for o, c, nref, nret in rows
            if o.order_id not in skip
        ]

    def reserve(self, pools: Iterable[str], limit: Decimal) -> list[dict[str, str]]:
        """One distinct order per requested pool, never one reserved before by this runner."""
        wanted = list(pools)
        for pool in wanted:
            if pool not in POOLS:
                raise KeyError(pool)
        with self._lock:
            now = datetime.now(UTC)
            candidates = self._candidates({d.order_id for d in DEMO.values()} | self._reserved)
            picked: list[Candidate] = []
            for pool in wanted:
                found = next((c for c in candidates if c not in picked and matches(pool, c, now, limit)), None)
                if found is None:
                    raise PoolExhausted(
                        f"no unreserved order left in pool {pool!r} ({POOLS[pool][0]}); run against a freshly "
                        "seeded database (the default run starts one)"
                    )
                picked.append(found)
            self._reserved.update(c.order_id for c in picked)
        return [c.fields() for c in picked]

    def order_facts(self, order_id: str) -> dict[str, Any]:
        """The fields a scenario's ``store:`` section may check."""
        with Session(self.engine) as db:
            order = db.get(Order, order_id)
            if order is None:
                return {}
            refunds = list(db.scalars(select(Refund).where(Refund.order_id == order_id).order_by(Refund.id)))
            returns = list(db.scalars(select(ReturnRequest).where(ReturnRequest.order_id == order_id).order_by(ReturnRequest.id)))
            return {
                "status": order.status, "shipping_address": order.shipping_address,
                "refund_status": refunds[-1].status if refunds else None,
                "refund_method": refunds[-1].method if refunds else None,
                "refund_count": len(refunds),
                "return_status": returns[-1].status if returns else None,
                "refund_amount": refunds[-1].amount if refunds else None,
                "refund_reason": refunds[-1].reason if refunds else None,
                "return_reason": returns[-1].reason if returns else None,
            }
