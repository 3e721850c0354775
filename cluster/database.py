"""The cluster's database: a fresh PostgreSQL schema per run (``cluster_<hex>`` in the server's
database, reached through the URL's ``search_path``), or the ``DATABASE_URL`` given; migrated once
before any gateway starts (``storage.db.upgrade``, under the migrations' advisory lock, as
``python -m storage migrate`` does). The model the Rasa servers serve is support ops' active model in
that database (``serving_model``). Rasa's tracker lives in a schema of its own beside it
(bot/rasa_stores.py: ``<schema>_rasa``); a fresh schema and Rasa's are dropped when the run ends
unless it is kept."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.rasa_stores import tracker_schema
from storage.coordination import is_postgres

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_SCHEMA = re.compile(r"^cluster_[0-9a-f]{12}$")


class DatabaseError(RuntimeError):
    """The database cannot be used for a cluster; the message says why (never with a password)."""


def shown(url: str) -> str:
    """``url`` for logs and status files: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def driver_url(url: str) -> str:
    """``postgresql://`` is psycopg 3 here (the project's driver), as storage/db.py takes it."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


@dataclass(frozen=True, repr=False)  # no repr: the URLs may hold a password
class ClusterDatabase:
    url: str  # what every gateway gets as DATABASE_URL
    admin_url: str  # the same server without the schema (to drop it)
    schema: str | None  # the fresh schema this run created, None for a given DATABASE_URL

    @property
    def rasa_schema(self) -> str:
        return tracker_schema(make_url(self.url))

    def drop(self) -> None:
        """Drop this run's schema and Rasa's (only a schema this run created)."""
        if self.schema is None or not _SCHEMA.match(self.schema):
            return
        engine = create_engine(self.admin_url)
        try:
            with engine.begin() as conn:
                for schema in (self.rasa_schema, self.schema):
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            engine.dispose()


def _check(url: str) -> None:
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:  # the first line only: a connection error, never the URL's password
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DatabaseError(f"cannot connect to {shown(url)}: {first}") from None
    finally:
        engine.dispose()


def fresh_schema(admin_url: str = DEFAULT_POSTGRES) -> ClusterDatabase:
    """A new empty schema on the PostgreSQL server of ``admin_url``."""
    admin_url = driver_url(admin_url)
    if not is_postgres(admin_url):
        raise DatabaseError(f"a cluster needs PostgreSQL; {shown(admin_url)} is not")
    _check(admin_url)
    schema = f"cluster_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()
    sep = "&" if "?" in admin_url else "?"
    return ClusterDatabase(f"{admin_url}{sep}options={quote(f'-csearch_path={schema}')}", admin_url, schema)


def require_postgres(url: str) -> str:
    """``url`` (with the project's driver) when it is PostgreSQL; DatabaseError saying why otherwise."""
    url = driver_url(url)
    try:
        postgres = is_postgres(url)
    except Exception:  # not a URL at all
        raise DatabaseError("DATABASE_URL is not a database URL (postgresql+psycopg://user@host/db)") from None
    if not postgres:
        raise DatabaseError(f"gateway replicas share one PostgreSQL database; DATABASE_URL {shown(url)} is not one "
                            "(leave it unset for a fresh schema on 127.0.0.1:5432)")
    return url


def given(url: str) -> ClusterDatabase:
    """The DATABASE_URL given (kept after the run)."""
    url = require_postgres(url)
    _check(url)
    return ClusterDatabase(url, url, None)


def serving_model(db: ClusterDatabase, built: Path, config: Path) -> tuple[Path, str]:
    """The model the Rasa servers start on, and a sentence saying why: the model promoted in this database
    (a kept ``DATABASE_URL``) when its file is still there; else ``built`` (the model of the current
    training data), recorded as the active model so that every gateway's registry agrees with the servers."""
    from ops.registry import ModelRegistry, active_model_file
    from storage.db import make_engine, make_session_factory

    engine = make_engine(db.url)
    try:
        sessions = make_session_factory(engine)
        active = active_model_file(sessions)
        if active is not None:
            return active, f"the active model of this database: {active.name}"
        registry = ModelRegistry(sessions, None)
        before = registry.active()
        registry.mark_running(built, data_hash=built.name.removeprefix("model-").removesuffix(".tar.gz"),
                              config=config.read_text(encoding="utf-8"))
        gone = f" (the file of the active model {before.id} is gone)" if before is not None else ""
        return built, f"{built.name}{gone}"
    except Exception as err:
        raise DatabaseError(f"cannot read or record the active model in {shown(db.url)}: {type(err).__name__}") from None
    finally:
        engine.dispose()


def migrate(db: ClusterDatabase) -> str:
    """Run the migrations once; the revision(s) reached."""
    from storage.db import heads, upgrade

    try:
        upgrade(db.url)
    except Exception as err:
        raise DatabaseError(f"migration of {shown(db.url)} failed: {type(err).__name__}: {err}") from None
    return ", ".join(sorted(heads()))
