"""The FSM storage while a user's update holds their row: one read, writes without a read first,
unchanged writes skipped, and outside the hold every call sees the database again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import event

from bot.container import App
from storage.fsm import SqlFSMStorage

KEY = StorageKey(bot_id=1, chat_id=1001, user_id=1001)
OTHER = StorageKey(bot_id=1, chat_id=1002, user_id=1002)


@contextmanager
def statements(app: App) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            seen.append(statement)

    event.listen(app.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(app.engine.sync_engine, "before_cursor_execute", record)


async def test_held_row_is_read_once_and_written_without_reading(app: App) -> None:
    storage = SqlFSMStorage(app.sessions, app.clock)
    await storage.set_state(KEY, "Intake:location")
    await storage.set_data(KEY, {"draft": "ab12", "photos": [("photo", "f1")]})
    with statements(app) as seen:
        async with storage.held(KEY):
            assert await storage.get_state(KEY) == "Intake:location"
            data = await storage.get_data(KEY)
            assert data == {"draft": "ab12", "photos": [["photo", "f1"]]}  # as the JSON column gives it
            data["photos"].append(["photo", "f2"])  # the caller's copy, not the held row
            assert (await storage.get_data(KEY))["photos"] == [["photo", "f1"]]
            assert len(seen) == 1
            await storage.set_state(KEY, "Intake:location")  # unchanged: nothing written
            assert len(seen) == 1
            await storage.set_state(KEY, "Intake:contact")
            assert len(seen) == 2 and not seen[1].lstrip().upper().startswith("SELECT")
            assert await storage.get_state(KEY) == "Intake:contact"
            assert await storage.get_data(KEY) == {"draft": "ab12", "photos": [["photo", "f1"]]}
            await storage.get_state(OTHER)  # another user's row is not held: read each time
            await storage.get_state(OTHER)
            assert len(seen) == 4
    # Afterwards the database says the same, read afresh.
    assert await storage.get_state(KEY) == "Intake:contact"
    assert await storage.get_data(KEY) == {"draft": "ab12", "photos": [["photo", "f1"]]}


async def test_clear_under_hold_leaves_no_row_and_nothing_outlives_the_hold(app: App) -> None:
    storage = SqlFSMStorage(app.sessions, app.clock)
    async with storage.held(KEY):
        assert await storage.get_state(KEY) is None
        await storage.set_data(KEY, {"draft": "cd34"})
        await storage.set_state(KEY, "Intake:confirm")
        await storage.set_state(KEY, None)
        await storage.set_data(KEY, {})
    assert await storage.count() == 0
    # Another process changed the row between two updates: the next hold reads it again.
    other_process = SqlFSMStorage(app.sessions, app.clock)
    await other_process.set_state(KEY, "AddInfo:collecting")
    async with storage.held(KEY):
        assert await storage.get_state(KEY) == "AddInfo:collecting"
