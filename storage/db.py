"""Engine, session factory and the declarative base for all tables.

One database holds the demo store and the conversations; any SQLAlchemy URL works (SQLite by
default, PostgreSQL for multi-replica deployments). The schema is owned by Alembic
(``storage/migrations``); ``upgrade(url)`` brings any database to the latest revision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_schema"
# The pre-release revision chain that the baseline replaced. A database stamped with exactly its heads
# has the baseline's schema and is re-stamped to it; one stamped with an older part of the chain is not.
SQUASHED_HEADS = frozenset({"0004_handoff", "0005_channels", "0007_verification_failures", "0010_pending_requests"})
SQUASHED_REVISIONS = SQUASHED_HEADS | {
    "0001_store",
    "0002_conversations",
    "0003_kb_feedback",
    "0006_ops",
    "0009_delivery",
}


class Base(DeclarativeBase):
    """Declarative base of every table in the application."""


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so readers never block the writer."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


T = TypeVar("T")


def get_or_raise(db: Session, model: type[T], key: Any, missing: Exception) -> T:
    """The row of ``model`` whose primary key is ``key``; ``missing`` is raised when there is none."""
    row = db.get(model, key)
    if row is None:
        raise missing
    return row


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error, so nothing half-written stays."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def heads() -> set[str]:
    """The revisions a fully migrated database is stamped with."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(_alembic_config("sqlite://")).get_heads())


def upgrade(url: str, then: Callable[[], Any] | None = None) -> None:
    """Run Alembic migrations up to head on ``url``, then ``then`` (the demo store's seeding: two
    replicas starting on an empty database both seeded it, and one failed on a duplicate key).

    On PostgreSQL several replicas may start at once: the upgrade runs under a session advisory lock
    (one per schema), so one replica migrates while the others wait and then find nothing to do. A
    replica that dies while migrating drops the lock with its connection (each revision runs in a
    transaction, so nothing is left half-done). ``python -m storage migrate`` runs the same step
    on its own, for deployments that migrate before rolling out.
    """
    from storage.coordination import MIGRATIONS_LOCK, is_postgres, pg_session_lock, sync_lock_engine

    if not is_postgres(url):
        _upgrade(url)
        if then is not None:
            then()
        return
    engine = sync_lock_engine(url)
    try:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar() or ""
            with pg_session_lock(conn, MIGRATIONS_LOCK, schema):
                _upgrade(url)
                if then is not None:
                    then()
    finally:
        engine.dispose()


def _upgrade(url: str) -> None:
    from alembic import command

    _restamp_squashed(url)
    # "heads": feature branches may each add a revision on the same parent.
    command.upgrade(_alembic_config(url), "heads")


def _restamp_squashed(url: str) -> None:
    """Move a database made by the pre-release revision chain onto the baseline that replaced it.

    Nothing else changes: the baseline creates the same schema. A database stamped with only part of
    that chain cannot be brought forward and gets a clear error instead of a half-applied upgrade.
    """
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table("alembic_version"):
            return
        with engine.begin() as conn:
            stamped = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
            if not stamped & SQUASHED_REVISIONS:
                return
            if stamped != SQUASHED_HEADS:
                raise RuntimeError(
                    f"the database at {engine.url.render_as_string(hide_password=True)} was made by a pre-release build (revisions "
                    f"{', '.join(sorted(stamped))}); bring it to {', '.join(sorted(SQUASHED_HEADS))} with that "
                    "build, or start a new database"
                )
            conn.execute(text("DELETE FROM alembic_version"))
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": BASELINE})
    finally:
        engine.dispose()
