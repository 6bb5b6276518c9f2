"""The Bot API answers 429 (retry after 1 s) or 502 to about 20 % of all calls, at random (seeded):
residents still finish their intakes, and every notification reaches its chat once, in order.

Direct replies ride the RetryRequests session middleware (bot/middlewares.py); notifications
ride the outbox (notifier/outbox.py): one chat's rows never overtake one another.
"""

from __future__ import annotations

import asyncio
import html
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from storage.tables import OutboxRow
from tests.faults_support import DESCRIPTIONS, NUMBER, intake_like_a_person
from tests.faults_support import _prompt as prompt

RESIDENTS = 8
STAFF = [(801, "王师傅", "maintenance"), (802, "李阿姨", "environment"), (803, "周队长", "security"),
         (804, "小陈", "service")]


async def test_every_notification_arrives_once_and_in_order_at_20_percent_errors(desk: Any) -> None:
    people = {}
    for tid, name, role in STAFF:
        people[tid], _ = await desk.staff(tid, name, role)
    emu = desk.emu
    emu.faults.seed(7)
    emu.faults.retry_after("*", 1, times=None, probability=0.1)
    emu.faults.server_error("*", 502, times=None, probability=0.1)

    users = [desk.user(2001 + i, f"业主{i}") for i in range(RESIDENTS)]
    numbers = await asyncio.gather(*(intake_like_a_person(u, DESCRIPTIONS[i % len(DESCRIPTIONS)], f"1390000{i:04d}",
                                                          patience=20, give_up=60)
                                     for i, u in enumerate(users)))
    # The dialog's own replies came in the dialog's order, each once (no re-sends were needed).
    for user in users:
        steps = [prompt(m.text) for m in user.bot_messages if prompt(m.text)]
        assert steps == ["contact", "card", "done"], [m.text[:20] for m in user.bot_messages]

    # Three notifications per resident (accepted, delayed, resolved with 回访), all queued at once.
    for number in numbers:
        complaint = await desk.app.complaints.get(number)
        actor = next(p for p in people.values() if p.id == complaint.assignee_id).as_actor()
        await desk.app.complaints.act(number, "accept", by=actor)
        await desk.app.complaints.delay(number, by=actor, new_resolve_by=complaint.resolve_by + timedelta(days=2),
                                        reason="等待配件")
        await desk.app.complaints.act(number, "resolve", by=actor, note="已处理")
    desk.background.outbox.notify()

    async def rows() -> list[OutboxRow]:
        async with desk.app.sessions() as session:
            return list((await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars())

    for _ in range(200):  # 40 s at most
        if all(r.status == "sent" for r in await rows()):
            break
        await asyncio.sleep(0.2)
    outbox = await rows()
    assert all(r.status == "sent" for r in outbox), [(r.id, r.status, r.last_error) for r in outbox if r.status != "sent"]

    # Each chat got its rows exactly once and in the order they were queued.
    chats: dict[int, list[OutboxRow]] = {}
    for row in outbox:
        chats.setdefault(row.chat_id, []).append(row)
    for chat_id, queued in chats.items():
        received = [m.text for m in emu.bot(desk.bot.token).chats[chat_id].bot_messages() if NUMBER.search(m.text)]
        expected = [html.unescape(re.sub(r"<[^>]+>", "", r.payload["text"]))
                    for r in queued if r.method == "sendMessage"]
        got = [t for t in received if t in expected]
        assert got == expected, (chat_id, got, expected)
    for user, number in zip(users, numbers, strict=True):
        told = [m.text for m in user.bot_messages if number in m.text]
        order = [next(i for i, t in enumerate(told) if key in t) for key in ("受理", "未能按原定时间", "问题解决了吗")]
        assert order == sorted(order), told

    faults = [c for c in emu.transcript if c.faults]
    assert len(faults) > 20, "the faults really fired"
    unexplained = [(c.method, c.status) for c in emu.transcript if c.status >= 400 and not c.faults
                   and c.method != "getUpdates"]
    assert not unexplained, unexplained
