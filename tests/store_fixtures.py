"""Reusable fixtures for tests that need a real, migrated and seeded store database.

Import the fixtures you use into a test module; the functions are named ``fixture_<name>`` and
register the fixture ``<name>``, e.g. ``from tests.store_fixtures import fixture_store_db  # noqa: F401``
gives tests a ``store_db`` argument. Fixtures they depend on must be imported too.
``store_db`` is parametrised over SQLite (a file in ``tmp_path``) and PostgreSQL (a throw-away
schema in ``TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
PostgreSQL is skipped with the reason shown when it cannot be reached — except when ``CI=true``,
where an unreachable database fails the test, so CI can never pass by silently skipping it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.db import make_engine, make_session_factory, upgrade
from store.seed import seed
from store.service import SqlOrdersService

# Fixed "now" of the seeded data and of every service call in the tests.
REFERENCE = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LIMIT = Decimal("150.00")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass
class StoreDb:
    """A migrated, seeded database: its URL, engine, session factory and a service over it."""

    backend: str
    url: str
    engine: Engine
    factory: sessionmaker[Session]
    service: SqlOrdersService
    _engines: list[Engine] = field(default_factory=list)

    def fresh_service(self, auto_refund_limit: Decimal = LIMIT) -> SqlOrdersService:
        """A service on a brand-new engine, to prove a change reached the database."""
        engine = make_engine(self.url)
        self._engines.append(engine)
        return SqlOrdersService(make_session_factory(engine), auto_refund_limit=auto_refund_limit)

    def dispose(self) -> None:
        for engine in [self.engine, *self._engines]:
            engine.dispose()


def _postgres_or_skip() -> str:
    """The admin URL when PostgreSQL answers; otherwise skip (or fail under CI=true)."""
    url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any connection problem means "not available here"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {type(exc).__name__}: {first_line}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires PostgreSQL. {reason}")
        pytest.skip(reason)
    return url


@contextmanager
def temporary_schema() -> Iterator[str]:
    """A URL whose connections use a new, empty PostgreSQL schema, dropped on exit."""
    admin_url = _postgres_or_skip()
    schema = f"store_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in admin_url else "?"
    try:
        yield f"{admin_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(name="postgres_schema_url")
def fixture_postgres_schema_url() -> Iterator[str]:
    """An empty PostgreSQL schema for one test (skipped when unreachable, failed under CI=true)."""
    with temporary_schema() as url:
        yield url


def make_store_db(url: str, backend: str, *, seeded: bool = True) -> StoreDb:
    """Migrate ``url`` with Alembic, seed it at ``REFERENCE`` and wrap it."""
    upgrade(url)
    db = _wrap(url, backend)
    if seeded:
        seed(db.factory, REFERENCE, auto_refund_limit=LIMIT)
    return db


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _wrap(url: str, backend: str) -> StoreDb:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    return StoreDb(backend, url, engine, factory, SqlOrdersService(factory, auto_refund_limit=LIMIT))


@pytest.fixture(scope="session", name="sqlite_store_template")
def fixture_sqlite_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated and seeded SQLite file; each test gets a copy (much faster than re-seeding)."""
    path = tmp_path_factory.mktemp("store_template") / "store.db"
    db = make_store_db(f"sqlite:///{path}", "sqlite")
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture(scope="session", name="postgres_store_schema")
def fixture_postgres_store_schema() -> Iterator[str]:
    """One migrated schema for the session; each test truncates it and seeds it again."""
    with temporary_schema() as url:
        upgrade(url)
        yield url


STORE_TABLES = ("customers", "orders", "order_items", "refunds", "return_requests", "outbox_emails")


@pytest.fixture(params=["sqlite", "postgresql"], name="store_db")
def fixture_store_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreDb]:
    """A freshly seeded store on each backend; no test sees another test's changes."""
    if request.param == "sqlite":
        target = tmp_path / "store.db"
        shutil.copyfile(request.getfixturevalue("sqlite_store_template"), target)
        db = _wrap(f"sqlite:///{target}", "sqlite")
    else:
        db = _wrap(request.getfixturevalue("postgres_store_schema"), "postgresql")
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(STORE_TABLES)} RESTART IDENTITY CASCADE"))
        seed(db.factory, REFERENCE, auto_refund_limit=LIMIT)
    yield db
    db.dispose()


@pytest.fixture(name="sqlite_store")
def fixture_sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreDb]:
    """A seeded SQLite store only, for tests whose point is not portability."""
    target = tmp_path / "store.db"
    shutil.copyfile(request.getfixturevalue("sqlite_store_template"), target)
    db = _wrap(f"sqlite:///{target}", "sqlite")
    yield db
    db.dispose()
