"""aiogram FSM storage in our database: a restart (or another process) continues the dialog."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
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


class _Held:
    """One user's row while their update is handled: read once, then kept in step with our writes."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.open = True
        self.loaded = False
        self.state: str | None = None
        self.data: dict[str, Any] = {}


def _as_stored(data: Mapping[str, Any]) -> dict[str, Any]:
    """The data as reading the JSON column back gives it (tuples become lists), and a copy."""
    return dict(json.loads(json.dumps(data)))


_held: ContextVar[_Held | None] = ContextVar("wuye_fsm_held", default=None)


class SqlFSMStorage(BaseStorage):
    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.sessions = sessions
        self.clock = clock

    @contextlib.asynccontextmanager
    async def held(self, key: StorageKey) -> AsyncIterator[None]:
        """While this key's user lock is held (one update): state and data are read in one query,
        writes need no read first, and a write that changes nothing is skipped. Only this update
        writes the row meanwhile, so what it read stays true; nothing is remembered afterwards."""
        held = _Held(_key(key))
        token = _held.set(held)
        try:
            yield
        finally:
            held.open = False
            _held.reset(token)

    def _holding(self, key: StorageKey) -> _Held | None:
        held = _held.get()
        return held if held is not None and held.open and held.key == _key(key) else None

    async def _read(self, key: StorageKey) -> tuple[str | None, dict[str, Any]]:
        held = self._holding(key)
        if held is not None and held.loaded:
            return held.state, held.data
        async with self.sessions() as session:
            row = await session.get(FSMStateRow, _key(key))
            state, data = (row.state, dict(row.data or {})) if row else (None, {})
        if held is not None:
            held.state, held.data, held.loaded = state, data, True
        return state, data

    async def _write(self, key: StorageKey, **values: Any) -> None:
        held = self._holding(key)
        if held is not None and held.loaded:
            state = values.get("state", held.state)
            data = _as_stored(values.get("data", held.data))
            if state == held.state and data == held.data:
                return
            held.loaded = False  # until the write is known to have committed
            async with self.sessions() as session:
                await self._store(session, key, state, data)
            held.state, held.data, held.loaded = state, data, True
            return
        async with self.sessions() as session:
            row = await session.get(FSMStateRow, _key(key))
            await self._store(session, key, values.get("state", row.state if row else None),
                              dict(values.get("data", row.data if row else {})))

    async def _store(self, session: AsyncSession, key: StorageKey, state: str | None, data: dict[str, Any]) -> None:
        if state is None and not data:
            # Nothing to remember: keep the table small.
            await session.execute(delete(FSMStateRow).where(FSMStateRow.key == _key(key)))
        else:
            await session.execute(upsert(session, FSMStateRow, {
                "key": _key(key), "state": state, "data": data, "updated_at": self.clock()},
                index_elements=["key"], update=["state", "data", "updated_at"]))
        await session.commit()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._write(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        return (await self._read(key))[0]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return _as_stored((await self._read(key))[1])

    async def count(self) -> int:
        async with self.sessions() as session:
            return len((await session.execute(select(FSMStateRow.key))).all())

    async def close(self) -> None:
        return None
