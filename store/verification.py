"""Identity verification with a lockout that survives restarts: failures are kept in the database.

A customer proves who they are with an order id and the email or username on that order. Three
tries per form were not enough protection: a new form (or a new conversation) gave three more. Here
every failed try is a row of ``verification_failures`` keyed by the order id typed and by the sender
(the conversation's sender id). ``max_attempts`` failures of one order id, or of one sender, within
the ``lockout`` window lock it: while locked no verification is attempted, not even a correct one.

- A failure for an order id that does not exist counts like any other, and the caller answers both
  alike, so the bot is no oracle for which order ids exist.
- A success removes only this sender's failures on this order (a customer who mistyped and then got
  it right); failures other senders made on the order stay, so a correct guess cannot unlock an
  order someone else has been guessing at.
- Each try is written before the identity is checked, so parallel guesses (many senders, one order)
  cannot slip past the limit: the k-th concurrent try sees at least k-1 others. A try refused by a
  lock is not kept, so a customer who tries again while locked does not extend their own lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from store import policies
from store.models import VerificationFailure
from store.service import CustomerView, OrdersService

SENDER_MAX_CHARS = 128


class VerificationOutcome(StrEnum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"  # no such order, or not its customer: deliberately one outcome
    LOCKED = "locked"  # too many failures: nothing was checked


@dataclass(frozen=True)
class VerificationResult:
    outcome: VerificationOutcome
    customer: CustomerView | None = None
    # LOCKED: when the lock ends. MISMATCH: set when this failure locked the order or the sender.
    locked_until: datetime | None = None


def locked_until(failures: Iterable[datetime], now: datetime, max_attempts: int, window: timedelta) -> datetime | None:
    """Until when these failures (of one order id, or of one sender) lock verification, or ``None``.

    ``max_attempts`` failures within ``window`` lock; the lock ends once enough of them have left the
    window that fewer than ``max_attempts`` remain (a sliding window, not a fixed penalty).
    """
    recent = sorted(t for t in failures if t > now - window)
    if max_attempts < 1 or len(recent) < max_attempts:
        return None
    return recent[len(recent) - max_attempts] + window


def sender_key(sender_id: str) -> str:
    """The sender id as stored: as given when it fits the column, else a digest of it."""
    if len(sender_id) <= SENDER_MAX_CHARS:
        return sender_id
    return "sha256:" + hashlib.sha256(sender_id.encode()).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class VerificationGuard:
    """Verifies identities against ``orders`` and counts failures in ``sessions``' database.

    ``clock`` is injectable so tests can move past the window without sleeping.
    """

    orders: OrdersService
    sessions: sessionmaker[Session]
    _: KW_ONLY
    max_attempts: int
    lockout: timedelta
    clock: Callable[[], datetime] = _utcnow

    # --- queries ----------------------------------------------------------------------------------

    def _until(self, session: Session, sender_id: str, order_id: str | None, now: datetime,
               exclude_id: int | None = None) -> datetime | None:
        keys = [VerificationFailure.sender_id == sender_key(sender_id)]
        if order_id is not None:
            keys.append(VerificationFailure.order_id == order_id)
        stmt = select(VerificationFailure.order_id, VerificationFailure.sender_id, VerificationFailure.created_at).where(
            or_(*keys), VerificationFailure.created_at > now - self.lockout
        )
        if exclude_id is not None:
            stmt = stmt.where(VerificationFailure.id != exclude_id)
        rows = session.execute(stmt).all()
        ends = [
            locked_until([r.created_at for r in rows if r.sender_id == sender_key(sender_id)], now, self.max_attempts,
                         self.lockout),
        ]
        if order_id is not None:
            ends.append(locked_until([r.created_at for r in rows if r.order_id == order_id], now, self.max_attempts,
                                     self.lockout))
        found = [end for end in ends if end is not None and end > now]
        return max(found) if found else None

    def locked_until(self, sender_id: str, order_id: str | None = None) -> datetime | None:
        """When the lock on this sender (and, if given, this order id) ends; ``None``: not locked."""
        oid = policies.normalise_order_id(order_id) if order_id is not None else None
        with self.sessions() as session:
            return self._until(session, sender_id, oid, self.clock())

    # --- attempts ---------------------------------------------------------------------------------

    def verify(self, order_id: str, identifier: str | None, sender_id: str) -> VerificationResult:
        """Check ``identifier`` against the order's customer, unless the order or the sender is locked."""
        oid = policies.normalise_order_id(order_id)
        if oid is None:  # not an order id at all: the caller asks again, nothing to count
            return VerificationResult(VerificationOutcome.MISMATCH)
        now = self.clock()
        with transaction(self.sessions) as session:  # counted before the check (see the module doc)
            session.execute(delete(VerificationFailure).where(VerificationFailure.created_at <= now - self.lockout))
            attempt = VerificationFailure(order_id=oid, sender_id=sender_key(sender_id), created_at=now)
            session.add(attempt)
            session.flush()
            attempt_id = attempt.id
        with transaction(self.sessions) as session:
            until = self._until(session, sender_id, oid, now, exclude_id=attempt_id)
            if until is not None:
                session.execute(delete(VerificationFailure).where(VerificationFailure.id == attempt_id))
                return VerificationResult(VerificationOutcome.LOCKED, locked_until=until)
        customer = self.orders.verify_identity(oid, identifier or "")
        with transaction(self.sessions) as session:
            if customer is not None:
                self._forget(session, oid, sender_id)
                return VerificationResult(VerificationOutcome.VERIFIED, customer=customer)
            return VerificationResult(
                VerificationOutcome.MISMATCH, locked_until=self._until(session, sender_id, oid, now)
            )

    def record_failure(self, order_id: str | None, sender_id: str) -> datetime | None:
        """Count a failure that did not go through ``verify`` (e.g. a tracker claiming a verification
        the store does not confirm); returns when the resulting lock ends, if there is one."""
        oid = policies.normalise_order_id(order_id) if order_id is not None else None
        if oid is None:
            oid = "-"  # no usable order id: counts against the sender only
        now = self.clock()
        with transaction(self.sessions) as session:
            session.add(VerificationFailure(order_id=oid, sender_id=sender_key(sender_id), created_at=now))
            session.flush()
            return self._until(session, sender_id, oid if oid != "-" else None, now)

    def _forget(self, session: Session, order_id: str, sender_id: str) -> None:
        session.execute(
            delete(VerificationFailure).where(
                and_(VerificationFailure.order_id == order_id, VerificationFailure.sender_id == sender_key(sender_id))
            )
        )
