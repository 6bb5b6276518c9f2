"""`kill -9` of the bot at random moments while 100 residents file complaints at once.

A real bot process (long polling) against the emulator, on a SQLite file and on PostgreSQL. It is
killed three times at seeded random moments and started again. Residents behave like people:
they answer what the bot asked last and, when it says nothing, send the same thing again.

Afterwards: every number a resident was given exists, with its history, and belongs to them; no
resident has two complaints (redelivered updates and repeated presses never file twice); every
unfinished dialog went on to the end; every outbox row was delivered to its chat.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from sqlalchemy import select

from complaints.model import EventKind
from emulator import BotAPIEmulator
from storage.tables import OutboxRow
from tests.faults_support import (
    DESCRIPTIONS,
    NUMBER,
    TOKEN,
    BotProcess,
    add_staff,
    fresh_app,
    intake_like_a_person,
)

RESIDENTS = 100
KILLS = 3
SEED = 20261125

STAFF = ([(700 + i, f"维修{i}", "maintenance") for i in range(5)]
         + [(720 + i, f"保洁{i}", "environment") for i in range(5)]
         + [(740 + i, f"秩序{i}", "security") for i in range(5)]
         + [(760 + i, f"客服{i}", "service") for i in range(3)]
         + [(780, "赵主任", "supervisor")])


async def test_kill_9_during_100_intakes(database_url: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    app = await fresh_app(database_url)
    started = time.monotonic()
    async with BotAPIEmulator(token=TOKEN, seed=SEED) as emu:
        await add_staff(app, emu, STAFF)
        bot = BotProcess(emu, database_url, tmp_path)
        await bot.start()
        try:
            residents = [emu.user(10_001 + i, first_name=f"业主{i}", bot=TOKEN) for i in range(RESIDENTS)]
            intakes = [asyncio.create_task(intake_like_a_person(
                user, DESCRIPTIONS[i % len(DESCRIPTIONS)], f"139{i:08d}", patience=8, give_up=80)) for i, user in enumerate(residents)]

            async def killer() -> None:
                for _ in range(KILLS):
                    await asyncio.sleep(rng.uniform(0.8, 3.0))
                    await bot.kill()
                    await asyncio.sleep(rng.uniform(0.0, 0.5))
                    await bot.start()

            await killer()
            numbers = await asyncio.gather(*intakes)
            intake_time = time.monotonic() - started

            # The outbox drains: assignment cards to staff, whatever was claimed when a process died.
            async def undelivered() -> list[tuple[int, str, str]]:
                async with app.sessions() as session:
                    rows = (await session.execute(select(OutboxRow))).scalars().all()
                return [(r.id, r.status, r.last_error or "") for r in rows if r.status != "sent"]

            for _ in range(100):  # 30 s at most
                if not await undelivered():
                    break
                await asyncio.sleep(0.3)
            assert not await undelivered(), "outbox rows never delivered"
        finally:
            await bot.stop()

        # Every number given exists, with its history, and is the resident's only complaint.
        complaints = {c.number: c for c in await app.complaints.list()}
        people = {r.telegram_id: r for r in [await app.roster.resident_for_telegram(u.id) for u in residents]}
        for user, number in zip(residents, numbers, strict=True):
            given = {n for m in user.bot_messages for n in NUMBER.findall(m.text)}
            assert given == {number}, (user.id, given)
            complaint = complaints[number]
            assert complaint.resident_id == people[user.id].id
            kinds = [e.kind for e in complaint.history]
            assert kinds[0] is EventKind.SUBMITTED and EventKind.ASSIGNED in kinds, kinds
        assert len(complaints) == RESIDENTS, "a redelivered update or a repeated press filed twice"

        # Every outbox row reached its chat (at least once).
        async with app.sessions() as session:
            rows = (await session.execute(select(OutboxRow))).scalars().all()
        for row in rows:
            chat = emu.bot(TOKEN).chats[row.chat_id]
            number = NUMBER.search(str(row.payload)).group(0)  # type: ignore[union-attr]
            assert any(number in m.text for m in chat.bot_messages()), (row.chat_id, row.payload)
        assert bot.starts == KILLS + 1
        print(f"\n{database_url.split(':')[0]}: {RESIDENTS} intakes, {KILLS} kills, {len(rows)} outbox rows, "
              f"{time.monotonic() - started:.1f} s (intakes done at {intake_time:.1f} s); bot errors logged: {len(bot.errors())}")
    await app.close()


async def test_the_same_draft_submitted_twice_is_filed_once(app) -> None:  # type: ignore[no-untyped-def]
    """What a press handled again after a crash does: the second submit returns the first complaint."""
    from complaints.services import NewComplaint

    resident = await app.roster.resident_for_telegram(1001, "张三")
    new = NewComplaint(text="楼道灯坏了", category="maintenance", urgency="general", resident_id=resident.id,
                       intake_key="a1b2c3d4")
    first = await app.complaints.submit(new, by=resident.as_actor())
    again = await app.complaints.submit(new, by=resident.as_actor())
    other = await app.complaints.submit(NewComplaint(text="楼道灯坏了", category="maintenance", urgency="general",
                                                     resident_id=resident.id, intake_key="ffff0000"),
                                        by=resident.as_actor())
    assert again.number == first.number and other.number != first.number
    assert len(await app.complaints.list(resident_id=resident.id)) == 2
