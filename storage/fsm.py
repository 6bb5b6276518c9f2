"""aiogram FSM storage in our database: a restart (or another process) continues the dialog."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.repositories import upsert
from storage.tables import FSMStateRow


def _key(key: StorageKey) -> str:
    return ":".join(str(part) for part in (key.bot_id, key.chat_id, key.user_id, key.thread_id or "",
                                           key.business_connection_id or "", key.destiny))


class SqlFSMStorage(BaseStorage):
    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.sessions = sessions
        self.clock = clock

    async def _row(self, key: StorageKey) -> FSMStateRow | None:
        async with self.sessions() as session:
            return await session.get(FSMStateRow, _key(key))

    async def _write(self, key: StorageKey, **values: Any) -> None:
        async with self.sessions() as session:
            row = await session.get(FSMStateRow, _key(key))
            state = values.get("state", row.state if row else None)
            data = values.get("data", row.data if row else {})
            if state is None and not data:
                # Nothing to remember: keep the table small.
                await session.execute(delete(FSMStateRow).where(FSMStateRow.key == _key(key)))
            else:
                await session.execute(upsert(session, FSMStateRow, {
                    "key": _key(key), "state": state, "data": dict(data), "updated_at": self.clock()},
                    index_elements=["key"], update=["state", "data", "updated_at"]))
            await session.commit()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._write(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        row = await self._row(key)
        return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row = await self._row(key)
        return dict(row.data or {}) if row else {}

    async def count(self) -> int:
        async with self.sessions() as session:
            return len((await session.execute(select(FSMStateRow.key))).all())

    async def close(self) -> None:
        return None
