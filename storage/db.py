"""Engine creation and schema upgrades for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy import exc as exc_module
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any fixed number: several processes starting at once upgrade the schema one at a time.
_MIGRATION_LOCK_ID = 0x77757965


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
        # SQLite allows one writer, but opening a connection is not cheap with aiosqlite (a thread,
        # the file, four PRAGMAs): pooled connections are reused, one task at a time each.
        kwargs.setdefault("poolclass", AsyncAdaptedQueuePool)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        ping_when_idle(engine)
    return engine


# A pooled connection used this recently is taken as alive. Pinging every checkout cost a
# transaction (BEGIN; ROLLBACK on asyncpg) per unit of work, about half of all of them.
IDLE_BEFORE_PING = 2.0  # seconds


def ping_when_idle(engine: AsyncEngine, idle: float = IDLE_BEFORE_PING) -> None:
    """Ping a pooled connection on checkout only if it sat unused for ``idle`` seconds.

    A database restarted or cut while the pool is idle is noticed before any work, as with
    ``pool_pre_ping``: the pool is emptied and a fresh connection is made. One lost while the
    connection was busy a moment ago fails the statement instead: that update answers "system
    busy" (the database is gone just then), and the disconnect empties the pool, so the next
    update after the database is back gets fresh connections.
    """
    pool_events = engine.sync_engine

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle:
            return  # a fresh connection, or one that worked a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise exc_module.InvalidatePoolError(f"ping after {idle:.0f}s idle failed: {exc}") from exc

    event.listen(pool_events, "checkin", on_checkin)
    event.listen(pool_events, "checkout", on_checkout)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade_sync(connection: Connection, revision: str = "head") -> None:
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    elif connection.dialect.name == "sqlite":
        # The driver would run the DDL outside any transaction, so two processes starting on a
        # fresh file both saw "no schema" and the second failed with "table … already exists".
        # Take the write lock before Alembic reads the current revision; the DDL then commits
        # (or rolls back) as one transaction when engine.begin() ends.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    command.upgrade(_alembic_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Create or upgrade the schema (idempotent; safe with several processes starting at once)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_sync, revision)


def _current_sync(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current_sync)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
