"""个人信息保护: /mydata exports everything stored about a resident, /forget deletes it after a
confirmation (statistics keep the complaints, anonymised), phones never reach a log or a summary."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bot.logging_filters import PhoneMaskFilter, install_phone_masking
from complaints.model import Attachment, Status
from dialogs.privacy import PrivacyAction
from storage.tables import AttachmentRow, ComplaintEventRow, FSMStateRow, OutboxRow, ResidentRow
from tests.resident_support import file_complaint, no_api_errors, started  # noqa: F401

PHONE = "13812345678"


async def _document(desk: Any, user: Any) -> dict[str, Any]:
    message = await user.wait_for(lambda m: m.document is not None, timeout=10)
    return json.loads(desk.emu.files[message.document["file_id"]].data)


async def test_mydata_sends_everything_stored_about_the_resident(desk: Any) -> None:
    other = await started(desk, 1002, "李四")
    theirs = await file_complaint(desk, other, "2号楼地库漏水很严重", phone="13900001111")
    user = await started(desk, 1001, "张三")
    staff, _ = await desk.staff(801, "王师傅", "maintenance")
    number = await file_complaint(desk, user, phone=PHONE)
    me = await desk.app.roster.resident_for_telegram(1001)
    await desk.app.complaints.act(number, "accept", by=staff.as_actor())
    await desk.app.complaints.add_info(number, by=me.as_actor(), text="补充:灯一直闪",
                                       attachments=[Attachment("photo", "PHOTO-FILE-1")])
    await desk.app.complaints.act(number, "resolve", by=staff.as_actor(), note="已更换灯泡")
    await desk.app.complaints.follow_up(number, by=me.as_actor(), solved=True, rating=4)
    await desk.app.complaints.comment_follow_up(number, by=me.as_actor(), comment="师傅很负责")

    await user.send_text("/mydata")
    data = await _document(desk, user)

    assert data["profile"]["telegram_id"] == 1001 and data["profile"]["phone"] == PHONE
    (complaint,) = data["complaints"]
    assert complaint["number"] == number and "楼道灯坏了" in complaint["text"]
    assert complaint["contact"]["phone"] == PHONE
    assert {"kind": "photo", "file_id": "PHOTO-FILE-1", "caption": None} in complaint["attachments"]
    assert complaint["follow_up"] == {"solved": True, "rating": 4, "comments": ["师傅很负责"]}
    events = [e["event"] for e in complaint["history"]]
    assert events[0] == "submitted" and "resolved" in events and "follow_up" in events
    assert "contact_revealed" not in events and "note" not in events  # the property's internal work
    text = json.dumps(data, ensure_ascii=False)
    assert theirs not in text and "13900001111" not in text and "李四" not in text, "someone else's data"


async def test_mydata_from_someone_we_know_nothing_about(desk: Any) -> None:
    stranger = desk.user(1099, "路人")
    await stranger.send_text("/mydata")
    assert "没有保存" in (await stranger.wait_for_message()).text
    async with desk.app.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(ResidentRow))).scalar_one() == 0


async def test_forget_after_confirmation_keeps_anonymised_statistics(desk: Any) -> None:
    user = await started(desk, 1001, "张三")
    number = await file_complaint(desk, user, phone=PHONE)
    me = await desk.app.roster.resident_for_telegram(1001)
    await desk.app.complaints.add_info(number, by=me.as_actor(), text=f"我的电话 {PHONE}",
                                       attachments=[Attachment("photo", "PHOTO-FILE-1")])
    other = await started(desk, 1002, "李四")
    theirs = await file_complaint(desk, other, "2号楼地库漏水很严重", phone="13900001111")
    async with desk.app.uow() as uow:  # a message still waiting for delivery to the resident
        await uow.outbox.add(1001, {"text": "稍后送达"}, at=desk.app.clock() + timedelta(days=1))
        await uow.commit()
    await user.send_text("3号楼门口的路灯不亮了")  # a dialog under way: its state must go too
    await user.wait_for(lambda m: "联系方式" in m.text or "请确认" in m.text)

    await user.send_text("/forget")
    card = await user.wait_for(lambda m: "确定要删除" in m.text)
    # A copy of the button in someone else's hands does nothing.
    copied = await other.press_callback(card.message_id, PrivacyAction(action="forget_yes", user=1001).pack())
    assert "失效" in (copied.text or "")
    await user.press(card, "不删除")
    assert "未做任何改动" in (await user.wait_for_edit(card)).text
    assert (await desk.app.roster.resident_for_telegram(1001)).phone == PHONE

    await user.send_text("/forget")
    card = await user.wait_for(lambda m: "确定要删除" in m.text)
    await user.press(card, "确认删除")
    assert "已删除" in (await user.wait_for_edit(card)).text

    complaint = await desk.app.complaints.get(number)
    assert complaint.resident_id is None and complaint.anonymous and complaint.contact.phone is None
    assert complaint.category == "maintenance" and complaint.status is Status.SUBMITTED  # statistics keep it
    assert PHONE not in complaint.text and not complaint.attachments
    async with desk.app.sessions() as session:
        row = (await session.execute(select(ResidentRow).where(ResidentRow.id == me.id))).scalar_one()
        assert (row.name, row.phone, row.telegram_id) == (None, None, None) and row.forgotten_at is not None
        notes = (await session.execute(select(ComplaintEventRow.note)
                                       .where(ComplaintEventRow.complaint_id == complaint.id))).scalars().all()
        assert not any(PHONE in (n or "") for n in notes)
        assert not (await session.execute(select(AttachmentRow).where(
            AttachmentRow.complaint_id == complaint.id))).first()
        assert not (await session.execute(select(FSMStateRow).where(FSMStateRow.key.like("%:1001:1001:%")))).first()
        assert not (await session.execute(select(OutboxRow).where(OutboxRow.chat_id == 1001))).first()
    # The other resident is untouched.
    assert (await desk.app.complaints.get(theirs)).contact.phone == "13900001111"
    await user.send_text("/mydata")
    assert "没有保存" in (await user.wait_for(lambda m: "没有保存" in m.text)).text


def test_phone_numbers_are_masked_in_every_log_record() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("wuye.test.privacy")
    logger.addHandler(handler)
    logger.propagate = False
    install_phone_masking(logger)
    try:
        logger.warning("resident %s gave %s", "张三", "13812345678")
        logger.warning("landline 010-87654321, mobile +86 139 0000 1111, update 100000732")
        try:
            raise ValueError(f"bad row (phone='{PHONE}')")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert PHONE not in out and "87654321" not in out and "0000 1111" not in out
    assert "138****5678" in out and "update 100000732" in out  # other numbers are left alone
    assert "ValueError" in out  # the traceback is still there, masked


async def test_no_phone_in_logs_of_an_intake_even_at_debug(desk: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(PhoneMaskFilter())  # what install_phone_masking does to the root handlers
    for name in ("aiosqlite", "sqlalchemy.engine"):  # these print SQL parameters at DEBUG/INFO
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        user = await started(desk, 1001, "张三")
        await file_complaint(desk, user, phone=PHONE)
    finally:
        for name in ("aiosqlite", "sqlalchemy.engine"):
            logging.getLogger(name).setLevel(logging.WARNING)
    assert caplog.records, "nothing was logged: the check would prove nothing"
    assert PHONE not in caplog.text


async def test_phones_never_in_the_daily_summary(desk: Any) -> None:
    user = await started(desk, 1001, "张三")
    number = await file_complaint(desk, user, f"5栋3单元801楼道灯坏了,电话{PHONE}", phone=PHONE)
    desk.app.clock.advance(timedelta(days=10))
    _, manager = await desk.staff(901, "钱经理", "manager")
    await manager.send_text("/overdue")
    summary = await manager.wait_for(lambda m: number in m.text, timeout=10)
    assert PHONE not in summary.text and "138****" not in summary.text
