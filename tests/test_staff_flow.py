"""A complaint carried from the resident's first message to 结案 using only Telegram buttons."""

from __future__ import annotations

from datetime import timedelta

from complaints.model import EventKind, Status


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
