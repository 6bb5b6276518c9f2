"""Two bot processes on one PostgreSQL database: every reminder and every move happens once.

Two ``build_app`` instances (two engines, two connection pools), two Background runtimes (timer
ticks and outbox workers) and one emulator: what a deployment with two replicas looks like.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from aiogram.client.default import DefaultBotProperties
from sqlalchemy import func, select

from bot.container import build_app
from notifier.runtime import Background
from storage.tables import OutboxRow
from tests.staff_helpers import FAST, fast_desk, file, resident  # noqa: F401  (fast_desk: the ``desk`` fixture)

WORKERS = 4
COMPLAINTS = 12


async def _drained(app) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        async with app.sessions() as session:
            left = (await session.execute(select(func.count()).select_from(OutboxRow)
                                          .where(OutboxRow.status.in_(("pending", "sending"))))).scalar_one()
        if not left:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{left} outbox rows still undelivered")


def _texts(desk, needle: str) -> Counter[str]:  # type: ignore[no-untyped-def]
    """(chat, text) → how many times the emulator received it."""
    return Counter(f"{c.params['chat_id']}|{c.params['text']}" for c in desk.emu.calls("sendMessage")
                   if c.status == 200 and needle in str(c.params.get("text")))


async def test_two_processes_send_each_reminder_exactly_once(desk, clock, settings) -> None:
    if desk.app.engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED claiming between processes is a PostgreSQL matter")
    other_app = await build_app(settings, clock=clock)
    other_bot = desk.emu.make_bot(default=DefaultBotProperties(parse_mode="HTML"))
    other = Background(other_app, other_bot, timer_interval=3600, outbox_idle=0.05, worker_id="replica-2",
                       limits=FAST)
    await other.start()
    try:
        for i in range(WORKERS):
            await desk.staff(510 + i, f"师傅{i}", "maintenance")
        await desk.staff(601, "赵主任", "supervisor")
        # Different residents: a repeat complaint would be more urgent and have other deadlines.
        numbers = [await file(desk, await resident(desk, 1401 + i, f"业主{i}"), f"{i + 1}号楼电梯异响")
                   for i in range(COMPLAINTS)]
        await _drained(desk.app)
        first = await desk.app.complaints.get(numbers[0])

        per_process = Counter[str]()

        async def both_tick() -> int:
            fired = await asyncio.gather(desk.background.fire_timers(), other.fire_timers())
            per_process.update({"one": fired[0], "two": fired[1]})
            return sum(fired)

        # 75 % of the accept window: one reminder per complaint, whoever fires it.
        clock.set(first.accept_by - timedelta(minutes=30))
        fired = [await both_tick() for _ in range(3)]
        assert fired[0] == COMPLAINTS and fired[1:] == [0, 0]
        await _drained(desk.app)
        reminders = _texts(desk, "尚未接单")
        assert len(reminders) == COMPLAINTS and set(reminders.values()) == {1}, reminders

        # The accept deadline: each complaint moves once, the supervisor hears once per complaint.
        clock.set(first.accept_by + timedelta(minutes=1))
        for _ in range(3):
            await both_tick()
        await _drained(desk.app)
        moved = _texts(desk, "超时未接单")
        assert len(moved) == COMPLAINTS and set(moved.values()) == {1}, moved
        for number in numbers:
            complaint = await desk.app.complaints.get(number)
            assigned = [e for e in complaint.history if e.kind == "assigned"]
            assert len(assigned) == 2 and assigned[0].data["staff_id"] != assigned[1].data["staff_id"]
        cards = Counter(c.params["chat_id"] for c in desk.emu.calls("sendMessage")
                        if "新投诉" in str(c.params.get("text")) and c.status == 200)
        assert sum(cards.values()) == 2 * COMPLAINTS
        assert sum(per_process.values()) == 2 * COMPLAINTS, per_process
    finally:
        await other.stop()
        await other_bot.session.close()
        await other_app.close()
