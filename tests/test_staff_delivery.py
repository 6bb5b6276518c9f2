"""Delivery trouble on the staff side: 403 (never started, blocked), 429, 5xx, and what reaches logs."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from complaints.model import EventKind, Status
from tests.staff_helpers import PHONE, fast_desk, file, resident  # noqa: F401  (fast_desk: the ``desk`` fixture)


async def _recorded(desk, error: str, attempts: int | None = None) -> None:
    """Wait until the outbox worker has recorded a failed attempt (it answers, then writes)."""
    from sqlalchemy import select

    from storage.tables import OutboxRow

    for _ in range(200):
        async with desk.app.sessions() as session:
            rows = (await session.execute(select(OutboxRow).where(OutboxRow.status == "pending"))).scalars().all()
        if any((r.last_error or "").startswith(error) and (attempts is None or r.attempts == attempts)
               for r in rows):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no pending outbox row with error {error!r}")


def _cards(user, number: str) -> list:
    return [m for m in user.bot_messages if number in m.text and "新投诉" in m.text]


async def test_staff_who_never_started_is_reported_and_work_moves(desk) -> None:
    # Added with `wuye staff add` but never opened the bot; lowest id and no load: routing picks them.
    silent = await desk.app.roster.add_staff(telegram_id=503, name="没启动", role="maintenance")
    desk.user(503, "没启动")  # exists in Telegram, never pressed START
    _, reachable = await desk.staff(502, "刘师傅", "maintenance")
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    owner = await resident(desk, 1301, "业主庚")
    number = await file(desk, owner)
    assert (await desk.app.complaints.get(number)).assignee_id == silent.id

    card = await reachable.wait_for(lambda m: number in m.text and "新投诉" in m.text)
    notice = await boss.wait_for(lambda m: number in m.text and "无法通过 Telegram 联系" in m.text)
    assert "没启动" in notice.text and "刘师傅" in notice.text
    moved = await desk.app.complaints.get(number)
    assert moved.assignee_id != silent.id and moved.status is Status.ASSIGNED
    assert not (await desk.app.roster.staff_by_telegram(503)).reachable
    await reachable.press(card, "✅ 接单")
    await owner.wait_for(lambda m: "已由工作人员受理" in m.text)

    # Nobody else gets work meant for them until they press /start.
    second = await file(desk, owner, "楼顶漏水")
    await reachable.wait_for(lambda m: second in m.text)
    late = desk.user(503)
    await late.start()
    await late.wait_for(lambda m: "您好" in m.text)
    assert (await desk.app.roster.staff_by_telegram(503)).reachable
    forbidden = desk.emu.calls("sendMessage")
    assert [c.status for c in forbidden if c.status == 403 and c.params["chat_id"] in (503, "503")] == [403]
    desk.expected_refusals = 1


async def test_staff_who_blocked_the_bot_loses_their_work_to_a_colleague(desk, clock) -> None:
    _, leaver = await desk.staff(501, "王师傅", "maintenance")
    _, colleague = await desk.staff(502, "刘师傅", "maintenance")
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    # A second supervisor who never opened the bot: notices to supervisors bounce off them.
    await desk.app.roster.add_staff(telegram_id=602, name="钱主任", role="supervisor")
    desk.user(602, "钱主任")
    owner = await resident(desk, 1302, "业主辛")
    held = await file(desk, owner, "电梯又停了!天天坏!", emotion="angry")
    await boss.wait_for(lambda m: held in m.text and "服务上移" in m.text)
    # Nothing to move from 钱主任: the supervisors are told of the person instead.
    ghost = await boss.wait_for(lambda m: "钱主任" in m.text and "无法通过 Telegram 联系" in m.text)
    assert "/start" in ghost.text
    card = await leaver.wait_for(lambda m: held in m.text)
    await leaver.press(card, "✅ 接单")
    await leaver.wait_for_edit(card, lambda m: "✅ 接单" not in str(m.inline_keyboard))
    await leaver.block()

    # The resolve reminder bounces: the in-progress work goes to the colleague, the supervisor hears.
    complaint = await desk.app.complaints.get(held)
    clock.set(complaint.resolve_by - timedelta(hours=1))
    await desk.tick()
    await colleague.wait_for(lambda m: held in m.text and "新投诉" in m.text)
    notice = await boss.wait_for(lambda m: held in m.text and "无法通过 Telegram 联系" in m.text)
    assert "王师傅" in notice.text and "刘师傅" in notice.text
    moved = await desk.app.complaints.get(held)
    assert moved.status is Status.ASSIGNED and moved.accepted_at is None
    assert moved.history[-1].data.get("reason") == "unreachable"
    assert not (await desk.app.roster.staff_by_telegram(501)).reachable
    forbidden = [c for c in desk.emu.transcript if c.status == 403]
    assert {str(c.params["chat_id"]) for c in forbidden} == {"501", "602"}
    desk.expected_refusals = len(forbidden)


async def test_429_and_5xx_during_delivery_each_card_arrives_once(desk, clock) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    owner = await resident(desk, 1303, "业主壬")
    desk.emu.faults.retry_after("sendMessage", 1, times=1)
    first = await file(desk, owner)
    await desk.emu.wait_for_call("sendMessage", lambda c: c.status == 429)
    # retry_after is counted on the injected clock too (the row's not_before): once the worker has
    # recorded the 429, move past it.
    await _recorded(desk, "429")
    clock.advance(timedelta(seconds=2))
    await worker.wait_for(lambda m: first in m.text, timeout=5)

    desk.emu.faults.server_error("sendMessage", 502, times=2)
    second = await file(desk, owner, "消防栓漏水")
    for attempt in (1, 2):  # exponential backoff on the injected clock: 1 s, then 2 s (+ ≤ 25 % jitter)
        await _recorded(desk, "TelegramServerError", attempts=attempt)
        clock.advance(timedelta(seconds=3))
        desk.background.outbox.notify()
    await worker.wait_for(lambda m: second in m.text)
    assert len(_cards(worker, first)) == 1 and len(_cards(worker, second)) == 1
    statuses = [c.status for c in desk.emu.calls("sendMessage") if c.faults]
    assert statuses == [429, 502, 502]


async def test_phone_never_in_logs_summaries_or_staff_texts_until_revealed(desk, clock, caplog) -> None:
    from notifier.runtime import SQL_LOGGERS, quiet_sql_logs

    caplog.set_level(logging.DEBUG)  # everything the bot's own code and aiogram log, at any level
    quiet_sql_logs()  # as the running bot does: drivers' SQL parameter dumps stay out of the log
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    _, manager = await desk.staff(701, "钱经理", "manager")
    owner = await resident(desk, 1304, "业主癸")
    number = await file(desk, owner, f"楼上漏水到我家,急!回电{PHONE}或 021-55556666", emotion="angry")
    card = await worker.wait_for(lambda m: number in m.text)
    notice = await boss.wait_for(lambda m: number in m.text and "服务上移" in m.text)
    for text in (card.text, notice.text):
        assert PHONE not in text and "55556666" not in text and "138****5678" in text
    await worker.press(card, "✅ 接单")
    await worker.press(card, "📞 联系业主")
    reveal = await worker.wait_for(lambda m: "业主联系电话" in m.text)
    assert PHONE in reveal.text
    complaint = await desk.app.complaints.get(number)
    assert [e.actor_id for e in complaint.history if e.kind is EventKind.CONTACT_REVEALED] == [complaint.assignee_id]

    clock.set(complaint.resolve_by + timedelta(hours=1))
    await desk.tick()
    clock.set(clock().replace(hour=9, minute=0) + timedelta(days=1))
    await desk.tick()
    summary = await manager.wait_for(lambda m: "每日投诉逾期汇总" in m.text and number in m.text)
    await manager.send_command("overdue")
    overdue = await manager.wait_for(lambda m: "每日投诉逾期汇总" in m.text and m is not summary)
    for text in (summary.text, overdue.text):
        assert PHONE not in text and "5678" not in text
    await boss.send_command("queue")
    queue = await boss.wait_for(lambda m: "全部未结投诉" in m.text)
    assert PHONE not in queue.text
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for name in SQL_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    leaks = [(r.name, r.levelname) for r in caplog.records if PHONE in r.getMessage() or "55556666" in r.getMessage()]
    assert not leaks, leaks


async def test_photos_reach_the_assignee_before_the_card(desk) -> None:
    from complaints.model import Attachment

    _, worker = await desk.staff(501, "王师傅", "maintenance")
    owner = await resident(desk, 1305, "业主子")
    shots = [await owner.send_photo() for _ in range(2)]
    await owner.wait_for(lambda m: True)  # the resident dialog's answer to the loose photos
    photos = [Attachment("photo", m.file_id()) for m in shots]
    one = await file(desk, owner, "楼道墙皮脱落", attachments=photos[:1])
    card = await worker.wait_for(lambda m: one in m.text and "新投诉" in m.text)
    assert "照片/视频:1 个" in card.text
    assert [m for m in worker.bot_messages if m.photo and one in (m.caption or "")]
    two = await file(desk, owner, "地面裂缝", attachments=photos)
    await worker.wait_for(lambda m: two in m.text and "新投诉" in m.text)
    (album,) = [c for c in desk.emu.calls("sendMediaGroup") if c.status == 200]
    assert len(album.params["media"]) == 2


async def test_a_single_video_reaches_the_assignee(desk) -> None:
    from complaints.model import Attachment

    _, worker = await desk.staff(501, "王师傅", "maintenance")
    owner = await resident(desk, 1306, "业主丑")
    stored = desk.emu.store_file(b"\x00\x00\x00\x18ftypmp42" + bytes(64), "video", mime_type="video/mp4")
    number = await file(desk, owner, "楼上漏水视频", attachments=[Attachment("video", stored.file_id)])
    await worker.wait_for(lambda m: number in m.text and "新投诉" in m.text)
    await desk.emu.wait_for_call("sendVideo", lambda c: c.status == 200, timeout=1)
