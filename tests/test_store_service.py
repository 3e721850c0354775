"""The store service against real databases migrated by Alembic and seeded.

Every test taking ``store_db`` runs twice: on a SQLite file in ``tmp_path`` and on PostgreSQL (a
throw-away schema; skipped with the reason shown when PostgreSQL is unreachable, failing instead
when ``CI=true``). See ``tests/store_fixtures.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

import store.service as service_module
from storage.db import BASELINE, MIGRATIONS_DIR, Base, make_engine, make_session_factory
from store.models import Customer, Order, OrderItem, OutboxEmail, Refund, ReturnRequest
from store.policies import MembershipLevel, OrderStatus, PolicyViolation, RefundMethod, RefundStatus
from store.seed import DEMO, seed
from store.service import OrdersService
from tests.store_fixtures import (  # noqa: F401  (fixture_* register the fixtures used as arguments)
    LIMIT,
    REFERENCE,
    StoreDb,
    fixture_postgres_store_schema,
    fixture_sqlite_store_template,
    fixture_store_db,
    make_store_db,
    sqlite_url,
)

STORE_TABLES = {"customers", "orders", "order_items", "refunds", "return_requests", "outbox_emails"}
NOW = REFERENCE


def _snapshot(factory: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every store table, to prove a refused action changed nothing."""
    snap: dict[str, list[tuple[Any, ...]]] = {}
    with factory() as session:
        for model in (Customer, Order, OrderItem, Refund, ReturnRequest, OutboxEmail):
            cols = [c for c in model.__table__.columns]
            rows = session.execute(select(*cols)).all()
            snap[model.__tablename__] = sorted((tuple(r) for r in rows), key=repr)
    return snap


def _refused(store_db: StoreDb, write: Callable[..., object], *args: Any, **kwargs: Any) -> PolicyViolation:
    """The violation ``write(*args, **kwargs)`` is refused with, once it is shown to have changed no row."""
    before = _snapshot(store_db.factory)
    with pytest.raises(PolicyViolation) as err:
        write(*args, **kwargs)
    assert _snapshot(store_db.factory) == before
    return err.value


# --- migrations and seed ----------------------------------------------------------------------


def test_migration_creates_exactly_what_the_models_declare(store_db: StoreDb) -> None:
    """The hand-written revision and the ORM models must not drift apart."""

    def only_store(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in STORE_TABLES

    with store_db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": only_store, "compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    assert diffs == []
    assert set(inspect(store_db.engine).get_table_names()) >= STORE_TABLES


def test_revision_0001_upgrades_and_downgrades_cleanly(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, BASELINE)
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) >= STORE_TABLES
    command.downgrade(cfg, "base")
    assert not STORE_TABLES & set(inspect(engine).get_table_names())
    engine.dispose()


def test_seed_covers_every_level_status_and_carrier(store_db: StoreDb) -> None:
    with store_db.factory() as s:
        customers = s.scalars(select(Customer)).all()
        orders = s.scalars(select(Order)).all()
        refunds = s.scalars(select(Refund)).all()
    assert len(customers) >= 60 and len(orders) >= 150
    assert {c.membership_level for c in customers} == {m.value for m in MembershipLevel}
    assert {o.status for o in orders} == {s.value for s in OrderStatus}
    assert any(o.total > LIMIT for o in orders) and any(o.total <= LIMIT for o in orders)
    assert all(re.fullmatch(r"\d{10}", o.order_id) for o in orders)
    assert all(c.email == f"{c.username}@email.com" for c in customers)
    sent = [o for o in orders if o.shipped_at is not None]
    assert {o.carrier for o in sent} == {"UPS", "FedEx", "USPS", "DHL"}
    assert all(o.tracking_number for o in sent)
    for o in orders:
        if o.status in ("shipped", "delivered", "refund_requested", "refunded"):
            assert o.shipped_at is not None and o.ordered_at <= o.shipped_at <= REFERENCE
        if o.status == "shipped":
            assert o.delivered_at is None
        if o.status in ("delivered", "refund_requested", "refunded"):
            assert o.delivered_at is not None and o.shipped_at <= o.delivered_at <= REFERENCE
        if o.status in ("processing", "cancelled"):
            assert o.shipped_at is None and o.carrier is None and o.tracking_number is None
    delivered_ages = [(REFERENCE - o.delivered_at).days for o in orders if o.delivered_at]
    assert min(delivered_ages) < 30 and max(delivered_ages) > 180  # windows matter
    assert {r.status for r in refunds} >= {"requested", "pending_approval", "refunded"}


def test_seed_is_idempotent(store_db: StoreDb) -> None:
    before = _snapshot(store_db.factory)
    assert seed(store_db.factory, REFERENCE, auto_refund_limit=LIMIT) is False
    assert _snapshot(store_db.factory) == before


def test_seed_is_deterministic(tmp_path: Path) -> None:
    a = make_store_db(sqlite_url(tmp_path / "a"), "sqlite")
    b = make_store_db(sqlite_url(tmp_path / "b"), "sqlite")
    snap_a, snap_b = _snapshot(a.factory), _snapshot(b.factory)
    a.dispose()
    b.dispose()
    assert snap_a == snap_b


def test_demo_fixtures_are_what_they_claim(store_db: StoreDb) -> None:
    svc = store_db.service
    expected_status = {
        "processing": "processing",
        "shipped": "shipped",
        "delivered_recent": "delivered",
        "delivered_old_bronze": "delivered",
        "delivered_guest_old": "delivered",
        "refund_requested": "refund_requested",
        "refunded": "refunded",
        "cancelled": "cancelled",
        "big_amount_delivered": "delivered",
        "gold_delivered_old": "delivered",
        "return_started": "delivered",
    }
    assert set(DEMO) == set(expected_status)
    for name, demo in DEMO.items():
        view = svc.get_order(demo.order_id)
        assert view is not None, name
        assert view.status == expected_status[name], name
        assert (view.customer.username, view.customer.email) == (demo.username, demo.email), name
    crystal = svc.get_order("3348917502")
    assert crystal is not None and crystal.status == "shipped" and crystal.carrier == "UPS"
    assert crystal.customer.full_name == "Crystal Minh"
    big = svc.get_order(DEMO["big_amount_delivered"].order_id)
    assert big is not None and big.total > LIMIT
    old_bronze = svc.get_order(DEMO["delivered_old_bronze"].order_id)
    assert old_bronze is not None and old_bronze.customer.membership_level == "bronze"
    gold = svc.get_order(DEMO["gold_delivered_old"].order_id)
    assert gold is not None and gold.customer.membership_level == "gold"
    assert gold.delivered_at is not None and (REFERENCE - gold.delivered_at).days > 180


# --- reads ------------------------------------------------------------------------------------


def test_sql_service_implements_the_protocol(store_db: StoreDb) -> None:
    assert isinstance(store_db.service, OrdersService)


def test_get_order_returns_a_full_view(store_db: StoreDb) -> None:
    view = store_db.service.get_order(DEMO["delivered_recent"].order_id)
    assert view is not None
    assert view.total == Decimal("117.00") and view.currency == "USD"
    assert [i.product_name for i in view.items] == ["Tommy Hilfiger shirt", "Guess jeans"]
    assert sum(i.unit_price * i.quantity for i in view.items) == view.total
    assert view.customer.membership_level is MembershipLevel.GUEST
    assert view.delivered_at == REFERENCE - timedelta(days=5)
    assert view.delivered_at.tzinfo is not None and view.delivered_at.utcoffset() == timedelta(0)
    assert view.refund is None and view.return_request is None


def test_get_order_accepts_spaced_ids_and_rejects_unknown_ones(store_db: StoreDb) -> None:
    svc = store_db.service
    found = svc.get_order(" 3348 917 502 ")
    assert found is not None and found.order_id == "3348917502"
    assert svc.get_order("0000000000") is None
    assert svc.get_order("not-an-id") is None


@pytest.mark.parametrize("identifier", ["cminh730@email.com", "cminh730", "  CMINH730@EMAIL.COM "])
def test_verify_identity_accepts_email_or_username(store_db: StoreDb, identifier: str) -> None:
    customer = store_db.service.verify_identity("3348917502", identifier)
    assert customer is not None and customer.username == "cminh730"


@pytest.mark.parametrize(
    "order_id,identifier",
    [
        ("3348917502", "aphoenix939@email.com"),  # someone else's email
        ("3348917502", "cminh731"),
        ("3348917502", ""),
        ("0000000000", "cminh730"),  # no such order
    ],
)
def test_verify_identity_refuses_mismatches(store_db: StoreDb, order_id: str, identifier: str) -> None:
    assert store_db.service.verify_identity(order_id, identifier) is None


def test_orders_of_lists_a_customers_orders_newest_first(store_db: StoreDb) -> None:
    orders = store_db.service.orders_of(" JWU477 ")
    ids = [o.order_id for o in orders]
    assert DEMO["processing"].order_id in ids and DEMO["return_started"].order_id in ids
    assert all(o.customer.username == "jwu477" for o in orders)
    assert [o.ordered_at for o in orders] == sorted((o.ordered_at for o in orders), reverse=True)
    assert store_db.service.orders_of("nobody") == []


def test_refund_status_reads_the_latest_refund(store_db: StoreDb) -> None:
    svc = store_db.service
    refunded = svc.refund_status(DEMO["refunded"].order_id)
    assert refunded is not None
    assert refunded.status is RefundStatus.REFUNDED and refunded.method is RefundMethod.GIFT_CARD
    assert refunded.amount == Decimal("129.00")
    requested = svc.refund_status(DEMO["refund_requested"].order_id)
    assert requested is not None and requested.status == "requested"
    assert svc.refund_status(DEMO["processing"].order_id) is None
    assert svc.refund_status("0000000000") is None


# --- cancel and address -----------------------------------------------------------------------


def test_cancel_processing_order_is_persisted(store_db: StoreDb) -> None:
    oid = DEMO["processing"].order_id
    view = store_db.service.cancel_order(oid, now=NOW)
    assert view.status is OrderStatus.CANCELLED
    reread = store_db.fresh_service().get_order(oid)
    assert reread is not None and reread.status == "cancelled"


@pytest.mark.parametrize(
    "name,code",
    [
        ("shipped", "already_shipped"),
        ("delivered_recent", "already_delivered"),
        ("refunded", "already_delivered"),
        ("cancelled", "already_cancelled"),
    ],
)
def test_cancel_refused_after_shipping(store_db: StoreDb, name: str, code: str) -> None:
    assert _refused(store_db, store_db.service.cancel_order, DEMO[name].order_id, now=NOW).code == code


def test_cancel_unknown_order(store_db: StoreDb) -> None:
    with pytest.raises(PolicyViolation) as err:
        store_db.service.cancel_order("0000000000")
    assert err.value.code == "order_not_found" and err.value.detail == {"order_id": "0000000000"}


def test_change_address_before_shipping_is_persisted(store_db: StoreDb) -> None:
    oid = DEMO["processing"].order_id
    view = store_db.service.change_address(oid, "  42 Elm Street,   Springfield, IL 62704 ")
    assert view.shipping_address == "42 Elm Street, Springfield, IL 62704"
    reread = store_db.fresh_service().get_order(oid)
    assert reread is not None and reread.shipping_address == "42 Elm Street, Springfield, IL 62704"
    assert reread.status == "processing"


@pytest.mark.parametrize(
    "name,address,code",
    [
        ("shipped", "42 Elm Street, Springfield, IL 62704", "already_shipped"),
        ("delivered_recent", "42 Elm Street, Springfield, IL 62704", "already_delivered"),
        ("cancelled", "42 Elm Street, Springfield, IL 62704", "cancelled"),
        ("processing", "   ", "invalid_address"),
        ("processing", "x" * 201, "invalid_address"),
    ],
)
def test_change_address_refused(store_db: StoreDb, name: str, address: str, code: str) -> None:
    assert _refused(store_db, store_db.service.change_address, DEMO[name].order_id, address).code == code


# --- refunds ----------------------------------------------------------------------------------


def test_refund_is_recorded_with_method_and_amount(store_db: StoreDb) -> None:
    oid = DEMO["delivered_recent"].order_id
    refund = store_db.service.request_refund(oid, "gift_card", "  wrong\nsize ", now=NOW)
    assert refund.status is RefundStatus.REQUESTED
    assert refund.method is RefundMethod.GIFT_CARD
    assert refund.amount == Decimal("117.00") and refund.currency == "USD"
    assert refund.reason == "wrong size" and refund.created_at == NOW
    fresh = store_db.fresh_service()
    order = fresh.get_order(oid)
    assert order is not None and order.status is OrderStatus.REFUND_REQUESTED
    assert fresh.refund_status(oid) == refund
    with store_db.factory() as s:
        rows = s.scalars(select(Refund).where(Refund.order_id == oid)).all()
    assert [(r.amount, r.method, r.status) for r in rows] == [(Decimal("117.00"), "gift_card", "requested")]


def test_refund_above_the_limit_waits_for_approval(store_db: StoreDb) -> None:
    refund = store_db.service.request_refund(
        DEMO["big_amount_delivered"].order_id, RefundMethod.CREDIT_CARD, "damaged", now=NOW
    )
    assert refund.status is RefundStatus.PENDING_APPROVAL and refund.amount == Decimal("389.00")


def test_refund_limit_comes_from_the_service_configuration(store_db: StoreDb) -> None:
    strict = store_db.fresh_service(auto_refund_limit=Decimal("100.00"))
    refund = strict.request_refund(DEMO["delivered_recent"].order_id, "credit_card", "late", now=NOW)
    assert refund.status is RefundStatus.PENDING_APPROVAL


def test_refund_accepts_abcd_wording_for_the_method(store_db: StoreDb) -> None:
    refund = store_db.service.request_refund(DEMO["delivered_recent"].order_id, "add value", "", now=NOW)
    assert refund.method is RefundMethod.STORE_CREDIT and refund.reason == "not given"


def test_gold_members_can_refund_old_orders(store_db: StoreDb) -> None:
    refund = store_db.service.request_refund(DEMO["gold_delivered_old"].order_id, "paper_check", "x", now=NOW)
    assert refund.status is RefundStatus.REQUESTED


@pytest.mark.parametrize(
    "name,code",
    [
        ("delivered_old_bronze", "outside_window"),
        ("delivered_guest_old", "outside_window"),
        ("refund_requested", "refund_already_requested"),
        ("refunded", "already_refunded"),
        ("cancelled", "cancelled"),
        ("processing", "cancel_instead"),
        ("shipped", "not_delivered_yet"),
    ],
)
def test_refused_refund_leaves_the_database_unchanged(store_db: StoreDb, name: str, code: str) -> None:
    refused = _refused(
        store_db, store_db.service.request_refund, DEMO[name].order_id, "credit_card", "changed my mind", now=NOW
    )
    assert refused.code == code


def test_refund_with_unknown_method_is_refused(store_db: StoreDb) -> None:
    refused = _refused(
        store_db, store_db.service.request_refund, DEMO["delivered_recent"].order_id, "bitcoin", "x", now=NOW
    )
    assert refused.code == "invalid_refund_method"
    assert "gift_card" in refused.detail["valid"]


def test_second_refund_is_refused(store_db: StoreDb) -> None:
    oid = DEMO["delivered_recent"].order_id
    store_db.service.request_refund(oid, "credit_card", "first", now=NOW)
    with pytest.raises(PolicyViolation) as err:
        store_db.service.request_refund(oid, "credit_card", "second", now=NOW)
    assert err.value.code == "refund_already_requested"


def test_a_crash_after_writing_leaves_nothing_half_written(store_db: StoreDb, monkeypatch: pytest.MonkeyPatch) -> None:
    """The refund row and the status change are one transaction: both or neither."""
    before = _snapshot(store_db.factory)

    def boom(*_args: Any) -> Any:
        raise RuntimeError("crash after flush")

    monkeypatch.setattr(service_module, "_refund_view", boom)
    with pytest.raises(RuntimeError):
        store_db.service.request_refund(DEMO["delivered_recent"].order_id, "credit_card", "x", now=NOW)
    assert _snapshot(store_db.factory) == before


# --- returns ----------------------------------------------------------------------------------


def test_start_return_issues_an_rma_code(store_db: StoreDb) -> None:
    oid = DEMO["delivered_recent"].order_id
    ret = store_db.service.start_return(oid, "wrong colour", now=NOW)
    assert re.fullmatch(r"RMA-[A-Z0-9]{8}", ret.rma_code)
    assert ret.status == "label_issued" and ret.reason == "wrong colour" and ret.created_at == NOW
    order = store_db.fresh_service().get_order(oid)
    assert order is not None and order.return_request == ret
    assert order.status == "delivered"
    with pytest.raises(PolicyViolation) as err:
        store_db.service.start_return(oid, "again", now=NOW)
    assert err.value.code == "return_already_started"


@pytest.mark.parametrize(
    "name,code",
    [
        ("return_started", "return_already_started"),
        ("delivered_old_bronze", "outside_window"),
        ("delivered_guest_old", "outside_window"),
        ("shipped", "not_delivered_yet"),
        ("processing", "cancel_instead"),
        ("refunded", "already_refunded"),
    ],
)
def test_start_return_refused(store_db: StoreDb, name: str, code: str) -> None:
    assert _refused(store_db, store_db.service.start_return, DEMO[name].order_id, "wrong size", now=NOW).code == code


def test_return_window_uses_the_now_passed_in(store_db: StoreDb) -> None:
    """A guest's recent delivery is returnable today but not 26 days from now."""
    oid = DEMO["delivered_recent"].order_id  # delivered 5 days before REFERENCE, guest: 30 days
    with pytest.raises(PolicyViolation) as err:
        store_db.service.start_return(oid, "late", now=NOW + timedelta(days=26))
    assert err.value.code == "outside_window"
    assert store_db.service.start_return(oid, "ok", now=NOW + timedelta(days=25)).status == "label_issued"


# --- password reset ---------------------------------------------------------------------------


def _outbox(factory: sessionmaker[Session]) -> list[OutboxEmail]:
    with factory() as s:
        return list(s.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))


@pytest.mark.parametrize("identifier", ["cminh730@email.com", " CMinh730 "])
def test_password_reset_writes_the_outbox(store_db: StoreDb, identifier: str) -> None:
    assert store_db.service.request_password_reset(identifier, now=NOW) is True
    [mail] = _outbox(store_db.factory)
    assert mail.to_address == "cminh730@email.com" and mail.kind == "password_reset"
    assert mail.sent_at is None and mail.created_at == NOW
    match = re.search(r"https://shop\.example\.com/reset-password\?token=([A-Za-z0-9_-]{40,})", mail.body)
    assert match, mail.body


def test_password_reset_tokens_are_random(store_db: StoreDb) -> None:
    store_db.service.request_password_reset("cminh730", now=NOW)
    store_db.service.request_password_reset("cminh730", now=NOW + timedelta(hours=1))  # one email per 15 minutes
    tokens = [re.search(r"token=(\S+)", m.body).group(1) for m in _outbox(store_db.factory)]  # type: ignore[union-attr]
    assert len(tokens) == 2 and tokens[0] != tokens[1]


@pytest.mark.parametrize("identifier", ["nobody@email.com", "nobody", "", "   "])
def test_password_reset_for_unknown_account_writes_nothing(store_db: StoreDb, identifier: str) -> None:
    assert store_db.service.request_password_reset(identifier) is False
    assert _outbox(store_db.factory) == []


# --- CLI --------------------------------------------------------------------------------------


def test_cli_seeds_and_shows_an_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from settings import get_settings
    from store.__main__ import app

    url = sqlite_url(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        first = runner.invoke(app, ["seed", "--reference", "2024-06-01T12:00:00"])
        assert first.exit_code == 0, first.output
        assert "3348917502" in first.output
        again = runner.invoke(app, ["seed"])
        assert again.exit_code == 0 and "nothing changed" in again.output
        shown = runner.invoke(app, ["show", "3348917502"])
        assert shown.exit_code == 0 and "shipped" in shown.output and "cminh730" in shown.output
        missing = runner.invoke(app, ["show", "0000000000"])
        assert missing.exit_code == 1
    finally:
        get_settings.cache_clear()
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Order)) >= 150
        delivered = s.get(Order, DEMO["delivered_recent"].order_id)
        assert delivered is not None and delivered.delivered_at == REFERENCE.astimezone(UTC) - timedelta(days=5)
    engine.dispose()
