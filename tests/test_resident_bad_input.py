"""Residents who do the unexpected: wrong kinds of messages, nonsense, old or forged buttons, floods.

Each gets a short Chinese answer; the draft survives; nothing reaches another resident; no
traceback reaches a chat; and the Bot API never refuses what the bot sends (see no_api_errors).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiogram.types import Chat, Message, Update, User

from complaints.model import Status
from dialogs import texts
from dialogs.keyboards import ComplaintAction, DraftAction
from dialogs.staff_views import FollowUpAction, StaffAction
from tests.resident_support import (  # noqa: F401 - no_api_errors is an autouse fixture
    CARD,
    bot_texts,
    file_complaint,
    flood_control,
    no_api_errors,
    started,
)


def _is_chinese_and_short(text: str) -> bool:
    return len(text) <= 200 and any("\u4e00" <= ch <= "\u9fff" for ch in text)


async def test_stickers_voice_locations_files_and_contacts_outside_and_inside_the_flow(desk) -> None:
    user = await started(desk, 2001)
    # Outside the flow: a short answer each, nothing filed.
    await user.send_sticker()
    assert (await user.wait_for_message()).text == texts.UNSUPPORTED_STICKER
    await user.send_voice()
    assert (await user.wait_for_message()).text == texts.UNSUPPORTED_VOICE
    await user.send_location()
    assert (await user.wait_for_message()).text == texts.UNSUPPORTED_LOCATION
    await user.send_document(b"%PDF-1.4", "bill.pdf")
    assert (await user.wait_for_message()).text == texts.UNSUPPORTED_FILE
    await user.send_contact("13900000000", "邻居", user_id=9999)
    assert (await user.wait_for_message()).text == texts.UNSUPPORTED_CONTACT

    # Inside the flow: the same answer plus what we are waiting for; the draft is kept.
    await user.send_text("楼道里的垃圾好几天没人清理了,味道很大")
    await user.wait_for(lambda m: "位置" in m.text)
    await user.send_sticker()
    hint = await user.wait_for_message()
    assert texts.UNSUPPORTED_STICKER in hint.text and texts.HINT_LOCATION in hint.text
    await user.send_location()  # a pin is a fine answer to "where"
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.send_voice()
    hint = await user.wait_for_message()
    assert texts.HINT_CONTACT in hint.text
    await user.send_contact("13900000000", "邻居", user_id=9999)  # someone else's number
    assert (await user.wait_for_message()).text == texts.CONTACT_NOT_OWN
    await user.send_contact("13900000000", "邻居")  # an address-book card: no user_id at all
    assert (await user.wait_for_message()).text == texts.CONTACT_NOT_OWN
    await user.send_text("我的电话是多少来着")
    assert (await user.wait_for_message()).text == texts.BAD_PHONE
    await user.share_contact("+86 139 0000 1234")  # their own, via the request_contact button
    card = await user.wait_for(lambda m: CARD in m.text)
    assert "楼道里的垃圾" in card.text and "定位" in card.text and "139****1234" in card.text
    await user.send_document(b"hello", "notes.txt")
    assert texts.HINT_CONFIRM in (await user.wait_for_message()).text
    await user.press(card, "✅ 提交")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    (c,) = await desk.app.complaints.list()
    assert c.contact.phone == "13900001234"
    assert all(_is_chinese_and_short(t) for t in bot_texts(user)[:-2])


async def test_empty_emoji_small_talk_and_unknown_commands(desk) -> None:
    user = await started(desk, 2002)
    for nonsense in ("   ", "😀😀😀", "……!!!", "?", "1"):
        await user.send_text(nonsense)
        assert (await user.wait_for_message()).text == texts.EMPTY_TEXT, nonsense
    await user.send_text("你好")
    assert (await user.wait_for_message()).text == texts.GREETING
    await user.send_text("谢谢!")
    assert (await user.wait_for_message()).text == texts.YOU_ARE_WELCOME
    await user.send_text("/foo")
    assert (await user.wait_for_message()).text == texts.UNKNOWN_COMMAND
    # An unknown command in the middle of a complaint leaves the draft where it was.
    await user.send_text("北门的道闸坏了,车进不来")
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.send_text("/delete_everything")
    assert (await user.wait_for_message()).text == texts.UNKNOWN_COMMAND
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: CARD in m.text)
    assert "北门的道闸" in card.text
    assert await desk.app.complaints.list() == []


async def test_longest_message_with_html_is_escaped_and_kept_whole(desk) -> None:
    user = await started(desk, 2003)
    head = "<b>5栋3单元801</b> 楼道灯坏了 & <script>alert(1)</script> "
    text = (head + "很黑" * 2100)[:4096]  # Telegram's limit for a message
    await user.send_text(text)
    await user.wait_for(lambda m: "联系方式" in m.text or "位置" in m.text)
    if "位置" in user.last_message.text:
        await user.send_text("5栋3单元801")
        await user.wait_for(lambda m: "联系方式" in m.text)
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: CARD in m.text)
    assert "<b>5栋3单元801</b>" in card.text and "<script>alert(1)</script>" in card.text  # shown as typed
    assert "…" in card.text and len(card.text) < 1000
    await user.press(card, "✅ 提交")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    (c,) = await desk.app.complaints.list()
    assert c.text == text.strip()
    await user.send_text("/my")
    listing = await user.wait_for(lambda m: "我的投诉" in m.text)
    await user.press(listing, c.number)
    details = await user.wait_for(lambda m: f"投诉 {c.number}" in m.text)
    assert "<script>" in details.text
    # A long history still fits one message: the timeline keeps the first and the latest steps.
    resident = await desk.app.roster.resident_for_telegram(user.id)
    for i in range(40):
        await desk.app.complaints.add_info(c.number, by=resident.as_actor(), text=f"补充{i} " + "<&>" * 60)
    await user.press(listing, c.number)
    details = await user.wait_for(lambda m: f"投诉 {c.number}" in m.text and "省略" in m.text)
    assert "补充39" in details.text and "登记受理" in details.text


async def test_a_text_longer_than_telegram_allows_is_kept_and_answered_briefly(desk) -> None:
    """Telegram cannot deliver 10,000 characters; another channel might: feed the update in."""
    user = await started(desk, 2004)
    text = "5栋3单元801楼道灯坏了。" + "晚上很黑,老人孩子出门很危险。" * 700
    assert len(text) > 10_000
    who = User(id=user.id, is_bot=False, first_name="业主")
    update = Update(update_id=10**9, message=Message(
        message_id=10**6, date=datetime.now(), chat=Chat(id=user.id, type="private"), from_user=who, text=text))
    await desk.dp.feed_update(desk.bot, update)
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: CARD in m.text)
    assert len(card.text) < 1000
    await user.press(card, "✅ 提交")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    (c,) = await desk.app.complaints.list()
    assert len(c.text) == 10_000 and c.text == text[:10_000]


async def test_old_forged_and_replayed_buttons_get_nothing(desk) -> None:
    alice = await started(desk, 2005, "张三")
    number = await file_complaint(desk, alice)
    alice_messages = len(alice.bot_messages)
    submitted_card = next(m for m in alice.bot_messages if CARD in m.text)

    mallory = await started(desk, 2006, "路人")
    anchor = mallory.last_message.message_id  # any message of theirs to hang presses on

    async def press(data: str) -> Any:
        return await mallory.press_callback(anchor, data)

    # Another resident's complaint, by forged data: refused, and nothing of Alice's shows.
    for action in ("open", "add", "withdraw", "withdraw_yes"):
        answer = await press(ComplaintAction(action=action, number=number).pack())
        assert answer.text == texts.NOT_YOURS and answer.show_alert
    # Staff buttons and 回访 buttons of her complaint; made-up and malformed data.
    for data in (StaffAction(action="accept", number=number).pack(),
                 StaffAction(action="open", number=number).pack(),
                 FollowUpAction(action="rate", number=number, value=1).pack(),
                 ComplaintAction(action="open", number="TS20990101-9999").pack(),
                 "d:submit", "zzz", "c:open", "s:resolve:" + number + ":x"):
        answer = await press(data)
        assert answer.text and _is_chinese_and_short(answer.text), (data, answer)
    await mallory.expect_no_message(0.2)
    assert not any(number in t for t in bot_texts(mallory))
    c = await desk.app.complaints.get(number)
    assert c.status is not Status.WITHDRAWN and c.rating is None
    assert len(alice.bot_messages) == alice_messages

    # Alice's own old card: replaying 提交 files nothing more.
    answer = await alice.press_callback(submitted_card.message_id, DraftAction(
        action="submit", draft="deadbeef").pack())
    assert answer.text == texts.STALE_BUTTON
    # A new draft: forged area text and an unknown category are refused; the real ones work.
    await alice.send_text("楼道里的垃圾好几天没人清理了")
    ask = await alice.wait_for(lambda m: "位置" in m.text)
    draft = DraftAction.unpack(ask.buttons["南门"]).draft
    answer = await alice.press_callback(ask.message_id, DraftAction(
        action="area", draft=draft, value="<b>我家</b>").pack())
    assert answer.text == texts.STALE_BUTTON
    await alice.press(ask, "南门")
    card = await alice.wait_for(lambda m: CARD in m.text)
    await alice.press(card, "✏️ 修改类别")
    picker = await alice.wait_for_edit(card)
    answer = await alice.press_callback(picker.message_id, DraftAction(
        action="setcat", draft=draft, value="vip").pack())
    assert answer.text == texts.STALE_BUTTON
    await alice.press(picker, "❌ 取消") if "❌ 取消" in picker.buttons else None
    await alice.send_text("/cancel")
    await alice.wait_for(lambda m: m.text == texts.CANCELLED)
    answer = await alice.press(picker, "环境卫生")  # a button on a cancelled draft
    assert answer.text == texts.STALE_BUTTON
    assert len(await desk.app.complaints.list()) == 1


async def test_twenty_messages_in_ten_seconds_are_rate_limited_politely(desk) -> None:
    now = [1000.0]
    flood_control(desk).clock = lambda: now[0]  # the test's clock: no real ten-second wait
    user = await started(desk, 2007)
    await user.send_text("楼道里的垃圾好几天没人清理了")
    await user.wait_for(lambda m: "位置" in m.text)
    for _ in range(23):  # 25 messages within the window, counting /start and the complaint
        await user.send_sticker()
    await user.wait_for(lambda m: m.text == texts.TOO_FAST)
    await user.expect_no_message(0.3)
    answers = bot_texts(user)
    assert answers.count(texts.TOO_FAST) == 1  # said once, not for every message
    assert sum(texts.UNSUPPORTED_STICKER in t for t in answers) == 18  # 20 within the limit
    now[0] += 11  # ten seconds later the resident is heard again, and the draft is still there
    await user.send_text("5栋3单元801")
    await user.wait_for(lambda m: "联系方式" in m.text)


async def test_a_failure_gets_a_polite_answer_and_loses_nothing(desk, monkeypatch) -> None:
    user = await started(desk, 2008)
    await user.send_text("5栋3单元801楼道灯坏了")
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: CARD in m.text)
    real_submit = desk.app.complaints.submit

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(desk.app.complaints, "submit", broken)
    answer = await user.press(card, "✅ 提交")
    assert answer.text == texts.SYSTEM_BUSY and answer.show_alert
    assert "✅ 提交" in card.buttons  # the card still works
    monkeypatch.setattr(desk.app.complaints, "submit", real_submit)
    await user.press(card, "✅ 提交")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    assert len(await desk.app.complaints.list()) == 1
    assert not any("Traceback" in t or "Error" in t or "database" in t for t in bot_texts(user))
