"""Alembic environment: the URL comes from ``sqlalchemy.url``, set in code by ``storage.db.upgrade``.

There is no ``alembic.ini``: ``upgrade(url)`` builds the ``Config``. A caller may instead pass an
open connection as ``config.attributes["connection"]`` (handy in tests and for one transaction
around several steps). Revisions are hand-written with ``op.create_table`` and must work on both
SQLite and PostgreSQL; ``render_as_batch`` lets later ALTERs run on SQLite too. ``versions/0001_schema.py``
is the baseline (the pre-release chain folded into one); new revisions go on top of it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

# Imported so that ``alembic revision --autogenerate`` sees every table; add new model modules here.
import bot.actions.runs  # noqa: F401  (action_runs)
import channels.models  # noqa: F401
import handoff.models  # noqa: F401
import ops.models  # noqa: F401
import storage.leases  # noqa: F401  (leases)
import store.models  # noqa: F401
from storage.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set; run migrations through storage.db.upgrade(url)")
    return url


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of executing it (``alembic upgrade --sql``)."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live database (the usual case)."""
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    # make_engine: same SQLite settings as the app, and it creates the database's folder.
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
