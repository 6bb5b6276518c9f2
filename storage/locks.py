"""Cross-process coordination in the database: remembered update ids and per-user locks."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.repositories import _upsert_ignore
from storage.tables import ProcessedUpdateRow

UPDATE_MEMORY = timedelta(days=2)  # Telegram stops redelivering an update long before this


class UpdateLedger:
    """Remembers which updates were taken, so a redelivered one is ignored by every process.

    An update is claimed when handling starts and marked done when it ends. A redelivery of a
    claim that never finished (its process was killed) is handled again once the claim is older
    than ``stale_after``: a resident's message is not lost with the process that took it.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime],
                 stale_after: timedelta = timedelta(seconds=30)) -> None:
        self.sessions = sessions
        self.clock = clock
        self.stale_after = stale_after

    async def claim(self, bot_id: int, update_id: int) -> bool:
        now = self.clock()
        async with self.sessions() as session:
            result = await session.execute(_upsert_ignore(session, ProcessedUpdateRow, {
                "bot_id": bot_id, "update_id": update_id, "at": now, "done_at": None}))
            if result.rowcount != 1:
                result = await session.execute(
                    update(ProcessedUpdateRow)
                    .where(ProcessedUpdateRow.bot_id == bot_id, ProcessedUpdateRow.update_id == update_id,
                           ProcessedUpdateRow.done_at.is_(None), ProcessedUpdateRow.at < now - self.stale_after)
                    .values(at=now))
            await session.commit()
            return result.rowcount == 1

    async def done(self, bot_id: int, update_id: int) -> None:
        async with self.sessions() as session:
            await session.execute(
                update(ProcessedUpdateRow)
                .where(ProcessedUpdateRow.bot_id == bot_id, ProcessedUpdateRow.update_id == update_id)
                .values(done_at=self.clock()))
            await session.commit()

    async def forget_old(self) -> int:
        async with self.sessions() as session:
            result = await session.execute(
                delete(ProcessedUpdateRow).where(ProcessedUpdateRow.at < self.clock() - UPDATE_MEMORY))
            await session.commit()
            return result.rowcount or 0


def _lock_key(namespace: str, value: int) -> int:
    digest = hashlib.blake2b(f"{namespace}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class UserLocks:
    """PostgreSQL advisory locks: one user's updates are handled one at a time across processes.

    A separate small pool holds the locks, so handlers never starve of connections while they
    wait. SQLite (one process by design) needs nothing beyond the in-process lock.
    """

    def __init__(self, engine: AsyncEngine, pool_size: int = 20) -> None:
        self.enabled = engine.dialect.name == "postgresql"
        self.engine = None
        if self.enabled:
            from storage.db import create_engine

            self.engine = create_engine(engine.url.render_as_string(hide_password=False),
                                        pool_size=pool_size, max_overflow=0)

    @contextlib.asynccontextmanager
    async def hold(self, user_id: int) -> AsyncIterator[None]:
        if self.engine is None:
            yield
            return
        key = _lock_key("user", user_id)
        async with self.engine.connect() as conn:
            await conn.execute(select(func.pg_advisory_lock(key)))
            try:
                yield
            finally:
                await conn.execute(select(func.pg_advisory_unlock(key)))
                await conn.commit()

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()
