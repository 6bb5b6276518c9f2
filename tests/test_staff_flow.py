"""A complaint carried from the resident's first message to 结案 using only Telegram buttons."""

from __future__ import annotations

from datetime import datetime, timedelta

from complaints.model import EventKind, Status
from complaints.timers import TimerKind
from tests.conftest import SHANGHAI
from tests.staff_helpers import fast_desk, file, resident  # noqa: F401  (fast_desk: the ``desk`` fixture)


async def _file_complaint(desk, user, text: str = "3栋2单元楼道灯坏了,晚上很黑") -> str:
    await user.start()
    await user.wait_for(lambda m: "欢迎" in m.text)
    await user.send_text(text)
    await user.wait_for(lambda m: "联系方式" in m.text or "位置" in m.text)
    if "位置" in user.last_message.text and "联系方式" not in user.last_message.text:
        await user.send_text("3栋2单元")
        await user.wait_for(lambda m: "联系方式" in m.text)
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: "请确认您的投诉" in m.text)
    await user.press(card, "✅ 提交")
    done = await user.wait_for(lambda m: "投诉编号" in m.text)
    (complaint,) = [c for c in await desk.app.complaints.list() if c.number in done.text]
    return complaint.number


async def test_accept_contact_resolve_follow_up_closed(desk) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    resident = desk.user(1001, "张三")
    number = await _file_complaint(desk, resident)

    card = await worker.wait_for(lambda m: number in m.text and "新投诉" in m.text)
    assert "138****5678" in card.text and "13812345678" not in card.text
    await worker.press(card, "✅ 接单")
    await resident.wait_for(lambda m: "已由工作人员受理" in m.text)
    await worker.press(card, "📞 联系业主")
    reveal = await worker.wait_for(lambda m: "业主联系电话" in m.text)
    assert "13812345678" in reveal.text
    await worker.press(card, "🏁 处理完成")
    await worker.wait_for(lambda m: "处理结果" in m.text)
    await worker.send_text("已更换楼道灯泡")
    await worker.wait_for(lambda m: "已标记处理完成" in m.text)

    ask = await resident.wait_for(lambda m: "已处理完毕" in m.text and "解决了吗" in m.text)
    assert "已更换楼道灯泡" in ask.text
    await resident.press(ask, "👍 已解决")
    stars = await resident.wait_for_edit(ask)
    await resident.press(stars, "⭐⭐⭐⭐⭐")
    complaint = await desk.app.complaints.get(number)
    assert complaint.status is Status.CLOSED and complaint.rating == 5
    kinds = [e.kind for e in complaint.history]
    assert kinds[:2] == [EventKind.SUBMITTED, EventKind.ASSIGNED]
    assert EventKind.CONTACT_REVEALED in kinds and kinds[-1] is EventKind.CLOSED


async def test_bad_rating_goes_to_review_with_another_person(desk) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    resident = desk.user(1002, "李四")
    number = await _file_complaint(desk, resident)
    card = await worker.wait_for(lambda m: number in m.text)
    await worker.press(card, "✅ 接单")
    await worker.press(card, "🏁 处理完成")
    await worker.send_text("已修")
    ask = await resident.wait_for(lambda m: "解决了吗" in m.text)
    await resident.press(ask, "👎 未解决")
    await resident.wait_for(lambda m: "复核" in m.text)
    review_card = await boss.wait_for(lambda m: "复核投诉" in m.text and number in m.text)
    complaint = await desk.app.complaints.get(number)
    assert complaint.status is Status.REVIEW
    staff_boss = await desk.app.roster.staff_by_telegram(601)
    assert complaint.assignee_id == staff_boss.id
    await boss.press(review_card, "✅ 接单")
    assert (await desk.app.complaints.get(number)).status is Status.IN_PROGRESS


async def test_missed_accept_deadline_moves_to_next_and_tells_supervisor(desk, clock) -> None:
    _, first = await desk.staff(501, "王师傅", "maintenance")
    _, second = await desk.staff(502, "刘师傅", "maintenance")
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    resident = desk.user(1003, "王五")
    number = await _file_complaint(desk, resident)
    complaint = await desk.app.complaints.get(number)
    holder_first = complaint.assignee_id
    chat_first, chat_second = (first, second) if holder_first == (await desk.app.roster.staff_by_telegram(501)).id \
        else (second, first)
    await chat_first.wait_for(lambda m: number in m.text)

    clock.advance(complaint.accept_by - clock() - timedelta(minutes=30))  # past 75 % of the window
    assert await desk.tick() >= 1
    await chat_first.wait_for(lambda m: "提醒" in m.text and number in m.text)

    clock.advance(timedelta(minutes=31))
    assert await desk.tick() >= 1
    await chat_second.wait_for(lambda m: number in m.text and "新投诉" in m.text)
    await boss.wait_for(lambda m: "超时未接单" in m.text and number in m.text)
    moved = await desk.app.complaints.get(number)
    assert moved.assignee_id != holder_first and moved.accept_by > complaint.accept_by
    assert await desk.tick() == 0  # nothing fires twice


async def test_delay_with_new_date_reaches_the_resident(desk, clock) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    owner = await resident(desk, 1004, "赵六")
    number = await file(desk, owner)
    card = await worker.wait_for(lambda m: number in m.text and "新投诉" in m.text)
    await worker.press(card, "✅ 接单")
    await owner.wait_for(lambda m: "已由工作人员受理" in m.text)

    await worker.press(card, "⏳ 延期")
    await worker.wait_for(lambda m: "新的完成时间" in m.text and "当前处理时限" in m.text)
    await worker.send_text("等几天")
    await worker.wait_for(lambda m: "没有看懂" in m.text)
    await worker.send_text("12-03 等待厂家配件")  # no time: the end of the working day
    done = await worker.wait_for(lambda m: "已延期至" in m.text)
    assert "2026年12月3日 18:00" in done.text

    told = await owner.wait_for(lambda m: "未能按原定时间完成" in m.text)
    assert "等待厂家配件" in told.text and "2026年12月3日 18:00" in told.text
    complaint = await desk.app.complaints.get(number)
    assert complaint.resolve_by == datetime(2026, 12, 3, 18, 0, tzinfo=SHANGHAI)
    assert complaint.last_event(EventKind.DELAYED).note == "等待厂家配件"
    async with desk.app.uow() as uow:
        pending = await uow.timers.pending(complaint.id)
    due = [t for t in pending if t.kind == TimerKind.RESOLVE_DUE]
    assert any(t.due_at == complaint.resolve_by for t in due)

    # The old deadline passes without an escalation: it was moved.
    clock.advance(timedelta(days=5, hours=1))  # 11-30 11:00, past the original 11-30 10:00
    await desk.tick()
    assert (await desk.app.complaints.get(number)).escalation_level == 0
    assert not [e for e in (await desk.app.complaints.get(number)).history if e.kind is EventKind.ESCALATED]


async def test_transfer_by_staff_then_supervisor_reassigns(desk) -> None:
    first, w1 = await desk.staff(501, "王师傅", "maintenance")
    second, w2 = await desk.staff(502, "刘师傅", "maintenance")
    third, w3 = await desk.staff(503, "陈师傅", "maintenance")
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    owner = await resident(desk, 1005, "钱七")
    number = await file(desk, owner)
    holder = (await desk.app.complaints.get(number)).assignee_id
    chats = {first.id: w1, second.id: w2, third.id: w3}
    card = await chats[holder].wait_for(lambda m: number in m.text and "新投诉" in m.text)

    await chats[holder].press(card, "🔀 转派")
    moved = await desk.app.complaints.get(number)
    assert moved.assignee_id not in (None, holder) and moved.status is Status.ASSIGNED
    await chats[moved.assignee_id].wait_for(lambda m: number in m.text and "新投诉" in m.text)
    # The old card loses its buttons: the complaint is no longer this person's.
    await chats[holder].wait_for_edit(card, lambda m: not m.inline_keyboard)

    await boss.send_command("queue")
    queue = await boss.wait_for(lambda m: "全部未结投诉" in m.text)
    await boss.press(queue, number)
    detail = await boss.wait_for(lambda m: number in m.text and "状态" in m.text)
    await boss.press(detail, "🔀 改派")
    pick = await boss.wait_for(lambda m: "改派给谁" in m.text)
    target = next(s for s in (first, second, third) if s.id not in (holder, moved.assignee_id))
    await boss.press(pick, f"{target.name}(工程维修)")
    await boss.wait_for_edit(pick, lambda m: "已改派" in m.text)
    await chats[target.id].wait_for(lambda m: number in m.text and "新投诉" in m.text)
    final = await desk.app.complaints.get(number)
    assert final.assignee_id == target.id
    assert [e.kind for e in final.history].count(EventKind.TRANSFERRED) == 2
    # Transfers are internal work: the resident heard of none of it.
    assert not [m for m in owner.bot_messages if "转派" in m.text]


async def test_not_property_business_refers_the_resident(desk) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    owner = await resident(desk, 1006, "孙八")
    number = await file(desk, owner, "小区门口市政路灯不亮")
    card = await worker.wait_for(lambda m: number in m.text)
    await worker.press(card, "🚫 非物业职责")
    await worker.wait_for(lambda m: "建议业主联系的单位" in m.text)
    await worker.send_text("市政路灯管理所 12319")
    await worker.wait_for(lambda m: "已记录转外部" in m.text)
    told = await owner.wait_for(lambda m: "不属于物业服务范围" in m.text)
    assert "市政路灯管理所 12319" in told.text
    complaint = await desk.app.complaints.get(number)
    assert complaint.status is Status.EXTERNAL and complaint.external_referral == "市政路灯管理所 12319"


async def test_anonymous_complaint_closes_without_follow_up(desk) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    owner = await resident(desk, 1007, "匿名")
    number = await file(desk, owner, "地库有积水", anonymous=True)
    card = await worker.wait_for(lambda m: number in m.text)
    assert "业主:匿名" in card.text and "****" not in card.text
    await worker.press(card, "✅ 接单")
    await worker.press(card, "🏁 处理完成")
    await worker.send_text("已清理积水")
    await worker.wait_for(lambda m: "已标记处理完成" in m.text)
    complaint = await desk.app.complaints.get(number)
    assert complaint.status is Status.CLOSED
    assert complaint.last_event(EventKind.FOLLOW_UP) is None
    await owner.wait_for(lambda m: "已处理完毕" in m.text)
    assert not [m for m in owner.bot_messages if "解决了吗" in m.text]


async def test_missed_resolve_deadline_goes_to_supervisor_then_manager(desk, clock) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    _, manager = await desk.staff(701, "钱经理", "manager")
    owner = await resident(desk, 1008, "周九")
    number = await file(desk, owner)
    card = await worker.wait_for(lambda m: number in m.text)
    await worker.press(card, "✅ 接单")
    complaint = await desk.app.complaints.get(number)

    clock.set(complaint.resolve_by - timedelta(hours=2))  # past 75 % of three working days
    await desk.tick()
    await worker.wait_for(lambda m: "提醒" in m.text and number in m.text and "到期" in m.text)
    clock.set(complaint.resolve_by + timedelta(minutes=1))
    await desk.tick()
    notice = await boss.wait_for(lambda m: "服务上移(客服主任)" in m.text and number in m.text)
    assert "超过处理时限" in notice.text and "王师傅" in notice.text
    assert not [m for m in manager.bot_messages if number in m.text]

    clock.advance(timedelta(days=2))  # one more working day, and then some
    await desk.tick()
    await manager.wait_for(lambda m: "服务上移(经理)" in m.text and number in m.text)
    assert (await desk.app.complaints.get(number)).escalation_level == 2
    assert await desk.tick() == 0


async def test_silence_after_resolution_closes_after_seven_days(desk, clock) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    owner = await resident(desk, 1009, "吴十")
    number = await file(desk, owner)
    card = await worker.wait_for(lambda m: number in m.text)
    await worker.press(card, "✅ 接单")
    await worker.press(card, "🏁 处理完成")
    await worker.send_photo("已修好按钮")
    await worker.wait_for(lambda m: "已标记处理完成" in m.text)
    await owner.wait_for(lambda m: "解决了吗" in m.text and "已修好按钮" in m.text)
    complaint = await desk.app.complaints.get(number)
    assert complaint.resolution == "已修好按钮" and len(complaint.attachments) == 1

    clock.advance(timedelta(days=6, hours=23))
    await desk.tick()
    assert (await desk.app.complaints.get(number)).status is Status.RESOLVED
    clock.advance(timedelta(hours=2))
    await desk.tick()
    await owner.wait_for(lambda m: "已结案" in m.text and number in m.text)
    closed = await desk.app.complaints.get(number)
    assert closed.status is Status.CLOSED and closed.history[-1].note.startswith("7天未收到回访")


async def test_angry_resident_and_staff_attitude_reach_the_supervisor_at_once(desk) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    owner = await resident(desk, 1010, "郑一")
    angry = await file(desk, owner, "电梯又坏了!你们到底管不管!", emotion="angry")
    notice = await boss.wait_for(lambda m: angry in m.text and "服务上移" in m.text)
    assert "业主情绪激动" in notice.text
    await worker.wait_for(lambda m: angry in m.text and "情绪激动" in m.text)

    rude = await file(desk, owner, "保安态度很差,还骂人", category="staff_attitude", urgency="important")
    card = await boss.wait_for(lambda m: rude in m.text and "新投诉" in m.text)
    assert "服务态度" in card.text
    assert (await desk.app.complaints.get(rude)).assignee_id == (await desk.app.roster.staff_by_telegram(601)).id


async def test_escalate_button_and_supervisor_takes_over(desk) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    boss_member, boss = await desk.staff(601, "赵主任", "supervisor")
    owner = await resident(desk, 1011, "冯二")
    number = await file(desk, owner)
    card = await worker.wait_for(lambda m: number in m.text)
    await worker.press(card, "✅ 接单")
    await worker.press(card, "⬆️ 上报")
    await worker.wait_for(lambda m: "上报" in m.text and "原因" in m.text)
    await worker.send_text("需要更换整套控制板,超出班组权限")
    await worker.wait_for(lambda m: "已上报客服主任" in m.text)
    notice = await boss.wait_for(lambda m: number in m.text and "服务上移" in m.text)
    assert "处理人员上报" in notice.text and "超出班组权限" in notice.text
    await boss.press(notice, "🙋 我来处理")
    complaint = await desk.app.complaints.get(number)
    assert complaint.assignee_id == boss_member.id and complaint.status is Status.IN_PROGRESS
    # Internal notes never reach the resident.
    assert not [m for m in owner.bot_messages if "超出班组权限" in m.text or "上报" in m.text]
