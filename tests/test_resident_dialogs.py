"""A resident files and follows a complaint through the real aiogram client and the emulator."""

from __future__ import annotations

from complaints.model import Status, Urgency


async def test_full_intake_text_location_contact_confirm(desk) -> None:
    user = desk.user(1001, "张三")
    await user.start()
    welcome = await user.wait_for(lambda m: "欢迎" in m.text)
    assert "我要投诉" in str(user.reply_keyboard)
    await user.send_text("楼道里的垃圾好几天没人清理了,味道很大")
    ask_location = await user.wait_for(lambda m: "位置" in m.text)
    assert ask_location.buttons  # public areas offered
    await user.send_text("5栋3单元801")
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.press_reply_button("📱 分享手机号")
    card = await user.wait_for(lambda m: "请确认您的投诉" in m.text)
    assert "5号楼3单元801室" in card.text and "环境卫生" in card.text
    await user.press(card, "✅ 提交")
    done = await user.wait_for(lambda m: "投诉编号" in m.text)
    assert "我们将在" in done.text and "处理完毕" in done.text
    complaints = await desk.app.complaints.list()
    assert len(complaints) == 1
    c = complaints[0]
    assert c.number in done.text
    assert c.category == "environment" and c.location.building == "5" and c.contact.phone
    assert welcome.message_id < done.message_id


# ---- more of the resident's journey ---------------------------------------------------------------
import asyncio  # noqa: E402

from complaints.model import EventKind  # noqa: E402
from dialogs import texts  # noqa: E402
from tests.resident_support import CARD, bot_texts, file_complaint, no_api_errors, started  # noqa: E402,F401


async def test_start_menu_contact_desk_and_help(desk) -> None:
    user = await started(desk, 1001, "张三")
    buttons = [b["text"] for row in user.reply_keyboard["keyboard"] for b in row]
    for label in ("我要投诉", "我的投诉", "紧急求助", "联系客服", "帮助"):
        assert any(label in b for b in buttons), (label, buttons)
    await user.press_reply_button(texts.MENU_CONTACT)
    desk_info = await user.wait_for(lambda m: "热线" in m.text)
    assert desk.app.settings.hotline in desk_info.text
    await user.press_reply_button(texts.MENU_HELP)
    help_text = await user.wait_for(lambda m: "使用帮助" in m.text)
    assert "/my" in help_text.text and "/cancel" in help_text.text
    await user.press_reply_button(texts.MENU_COMPLAIN)
    await user.wait_for(lambda m: "请用文字描述" in m.text)
    await user.send_text("小区南门的垃圾桶满了没人清")
    await user.wait_for(lambda m: "联系方式" in m.text and CARD not in m.text)  # location was in the text


async def test_contact_is_remembered_and_not_asked_again(desk) -> None:
    user = await started(desk, 1002, "李四")
    await user.send_text("中心花园的路灯坏了好几天")
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.press_reply_button(texts.SHARE_PHONE)  # request_contact: the user's own contact
    card = await user.wait_for(lambda m: CARD in m.text)
    assert "****" in card.text  # shown masked
    await user.press(card, "✅ 提交")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    # The second complaint goes straight to the card.
    await user.send_text("3栋1单元电梯按钮失灵")
    card = await user.wait_for(lambda m: CARD in m.text or "联系方式" in m.text)
    assert CARD in card.text, card.text
    await user.press(card, "✅ 提交")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    phones = {c.contact.phone for c in await desk.app.complaints.list()}
    assert phones == {f"138{1002:08d}"}


async def test_anonymous_is_remembered_and_a_number_on_the_card_ends_it(desk) -> None:
    user = await started(desk, 1003)
    await user.send_text("5栋3单元楼道里堆满了杂物")
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.press_reply_button(texts.ANONYMOUS)
    card = await user.wait_for(lambda m: CARD in m.text)
    assert "匿名" in card.text
    await user.press(card, "✅ 提交")
    done = await user.wait_for(lambda m: "投诉编号" in m.text)
    assert "匿名" in done.text
    await user.send_text("5栋3单元的垃圾还是没人清")
    card = await user.wait_for(lambda m: CARD in m.text or "联系方式" in m.text)
    assert CARD in card.text and "匿名" in card.text
    await user.send_text("13900001111")  # changes their mind on the card
    card = await user.wait_for(lambda m: CARD in m.text)
    assert "139****1111" in card.text and "匿名" not in card.text
    await user.press(card, "✅ 提交")
    done = await user.wait_for(lambda m: "投诉编号" in m.text)
    (latest,) = [c for c in await desk.app.complaints.list() if c.number in done.text]
    assert not latest.anonymous and latest.contact.phone == "13900001111"
    resident = await desk.app.roster.resident_for_telegram(1003)
    assert resident.phone == "13900001111" and not resident.prefers_anonymous


async def test_emergency_button_asks_only_the_location_and_registers_at_once(desk) -> None:
    user = await started(desk, 1004, "王五")
    await user.press_reply_button(texts.MENU_EMERGENCY)
    start = await user.wait_for(lambda m: "紧急求助" in m.text)
    assert desk.app.settings.hotline in start.text
    await user.send_text("有人被困在电梯里了")
    ask = await user.wait_for(lambda m: "位置" in m.text)
    assert desk.app.settings.hotline in ask.text
    assert "不便提供" not in str(ask.buttons)  # an emergency needs a place to go to
    await user.press(ask, "地下车库")
    done = await user.wait_for(lambda m: "投诉编号" in m.text)
    assert "立即赶往现场" in done.text and desk.app.settings.hotline in done.text
    assert not any("联系方式" in t for t in bot_texts(user))  # never asked for a phone
    (c,) = await desk.app.complaints.list()
    assert c.urgency is Urgency.EMERGENCY and c.location.area == "地下车库"


async def test_emergency_in_words_with_a_place_is_registered_without_questions(desk) -> None:
    user = await started(desk, 1005)
    await user.send_text("3栋1单元水管爆了,楼道里全是水!")
    done = await user.wait_for(lambda m: "投诉编号" in m.text)
    assert "立即赶往现场" in done.text
    assert not any("位置" in t or "联系方式" in t or CARD in t for t in bot_texts(user)[1:-1])
    (c,) = await desk.app.complaints.list()
    assert c.urgency is Urgency.EMERGENCY and c.location.building == "3"


async def test_angry_resident_gets_empathy_and_the_complaint_goes_up(desk) -> None:
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    user = await started(desk, 1006)
    number = await file_complaint(
        desk, user, "你们物业到底管不管?!5栋楼上漏水一个月了,再不处理我就打12345投诉你们!")
    texts_seen = bot_texts(user)
    empathy = next(t for t in texts_seen if "别着急" in t)
    assert "理解您的心情" in empathy and "客服主任" in empathy
    assert "客服主任已收到通知" in texts_seen[-1]
    c = await desk.app.complaints.get(number)
    assert c.is_angry and c.escalation_level >= 1
    assert any(e.kind is EventKind.ESCALATED for e in c.history)
    await boss.wait_for(lambda m: number in m.text)  # the supervisor hears of it at once


async def test_photos_first_then_words(desk) -> None:
    user = await started(desk, 1007)
    await user.send_album(3)
    await user.wait_for(lambda m: "照片已收到" in m.text)
    await user.expect_no_message(0.3)  # one answer per album, not three
    await user.send_text("5栋3单元801门口的墙皮大面积脱落")
    card = await user.wait_for(lambda m: CARD in m.text or "联系方式" in m.text)
    if CARD not in card.text:
        await user.send_text("13812345678")
        card = await user.wait_for(lambda m: CARD in m.text)
    assert "照片:3 张" in card.text
    await user.press(card, "✅ 提交")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    (c,) = await desk.app.complaints.list()
    assert len(c.attachments) == 3 and all(a.kind == "photo" for a in c.attachments)


async def test_album_with_caption_one_answer_and_at_most_five_photos(desk) -> None:
    user = await started(desk, 1008)
    await user.send_album(7, caption="北门岗亭的玻璃被人砸碎了")
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.wait_for(lambda m: "最多可附 5 张" in m.text)
    await user.expect_no_message(0.3)
    assert len(user.bot_messages) == 3  # welcome, the question, the photo limit
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: CARD in m.text)
    assert "照片:5 张" in card.text
    await user.press(card, "✅ 提交")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    (c,) = await desk.app.complaints.list()
    assert len(c.attachments) == 5


async def test_emergency_album_with_the_place_in_the_caption_keeps_every_photo(desk) -> None:
    user = await started(desk, 1009)
    await user.send_album(3, caption="3栋1单元电梯困人了,快来")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    await user.expect_no_message(0.3)
    (c,) = await desk.app.complaints.list()
    assert c.urgency is Urgency.EMERGENCY
    for _ in range(20):  # the other two photos join the complaint, not a new draft
        c = await desk.app.complaints.get(c.number)
        if len(c.attachments) == 3:
            break
        await asyncio.sleep(0.05)
    assert len(c.attachments) == 3


async def test_category_correction_when_unsure(desk) -> None:
    user = await started(desk, 1010)
    await user.send_text("5栋3单元801有点事情想反映一下")
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: CARD in m.text)
    assert "不太确定问题类别" in card.text and "修改类别" in str(card.buttons)
    await user.press(card, "✏️ 修改类别")
    picker = await user.wait_for_edit(card)
    assert "请选择问题类别" in picker.text
    await user.press(picker, "环境卫生")
    card = await user.wait_for_edit(picker)
    assert CARD in card.text and "环境卫生" in card.text and "不太确定" not in card.text
    await user.press(card, "✅ 提交")
    await user.wait_for(lambda m: "投诉编号" in m.text)
    (c,) = await desk.app.complaints.list()
    assert c.category == "environment"


async def test_my_complaints_details_add_info_and_withdraw(desk) -> None:
    user = await started(desk, 1011)
    number = await file_complaint(desk, user)
    await user.press_reply_button(texts.MENU_MY)
    listing = await user.wait_for(lambda m: "我的投诉" in m.text)
    assert number in listing.text and "受理" in listing.text
    await user.press(listing, number)
    details = await user.wait_for(lambda m: f"投诉 {number}" in m.text)
    assert "处理进度" in details.text and "登记受理" in details.text
    await user.press(details, "➕ 补充信息")
    await user.wait_for(lambda m: "补充的文字或照片" in m.text)
    await user.send_text("晚上九点以后完全看不见路")
    saved = await user.wait_for(lambda m: "已补充到投诉" in m.text)
    await user.send_album(2)
    await user.wait_for(lambda m: "已补充到投诉" in m.text)
    await user.expect_no_message(0.3)  # one answer for the album
    await user.press(saved, "完成")
    c = await desk.app.complaints.get(number)
    assert len(c.attachments) == 2
    assert [e.note for e in c.history if e.kind is EventKind.INFO_ADDED][0] == "晚上九点以后完全看不见路"
    # After 完成, words are a new complaint again.
    await user.send_text("/my")
    listing = await user.wait_for(lambda m: "我的投诉" in m.text)
    await user.press(listing, number)
    details = await user.wait_for(lambda m: f"投诉 {number}" in m.text)
    assert "补充信息" in details.text and "晚上九点以后" in details.text
    await user.press(details, "↩️ 撤销投诉")
    confirm = await user.wait_for(lambda m: "确定要撤销" in m.text)
    await user.press(confirm, "确定撤销")
    await user.wait_for_edit(confirm, lambda m: "已撤销" in m.text)
    assert (await desk.app.complaints.get(number)).status is Status.WITHDRAWN
    await user.press(details, "↩️ 撤销投诉")  # an old button on a withdrawn complaint
    assert not any(c.number != number for c in await desk.app.complaints.list())


async def test_add_info_left_open_does_not_swallow_a_new_complaint_later(desk, clock) -> None:
    from datetime import timedelta

    user = await started(desk, 1012)
    number = await file_complaint(desk, user)
    await user.send_text("/my")
    listing = await user.wait_for(lambda m: "我的投诉" in m.text)
    await user.press(listing, number)
    details = await user.wait_for(lambda m: f"投诉 {number}" in m.text)
    await user.press(details, "➕ 补充信息")
    await user.wait_for(lambda m: "补充的文字或照片" in m.text)
    clock.advance(timedelta(hours=3))  # never pressed 完成; comes back in the afternoon
    await user.send_text("中心花园的长椅坏了一条腿")
    await user.wait_for(lambda m: CARD in m.text or "位置" in m.text)
    assert not [e for e in (await desk.app.complaints.get(number)).history if e.kind is EventKind.INFO_ADDED]


async def test_restart_in_the_middle_of_the_dialog(desk) -> None:
    user = await started(desk, 1013)
    await user.send_text("楼道里的垃圾好几天没人清理了,味道很大")
    await user.wait_for(lambda m: "位置" in m.text)
    async with desk.restart():  # the process goes down and comes back; the draft is in the database
        await user.send_text("5栋3单元801")
        await user.wait_for(lambda m: "联系方式" in m.text)
        async with desk.restart():
            await user.send_text("13812345678")
            card = await user.wait_for(lambda m: CARD in m.text)
            assert "楼道里的垃圾" in card.text and "5号楼3单元801室" in card.text
            await user.press(card, "✅ 提交")
            await user.wait_for(lambda m: "投诉编号" in m.text)
    (c,) = await desk.app.complaints.list()
    assert c.text.startswith("楼道里的垃圾") and c.contact.phone == "13812345678"


async def test_quick_typing_answers_the_questions_in_order(desk) -> None:
    user = await started(desk, 1014)
    # No waiting between messages: each must see the state the previous one left.
    await user.send_text("楼道里的垃圾好几天没人清理了,味道很大")
    await user.send_text("5栋3单元801")
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: CARD in m.text)
    assert "楼道里的垃圾" in card.text and "5号楼3单元801室" in card.text and "138****5678" in card.text


async def test_double_tap_on_submit_files_one_complaint(desk) -> None:
    user = await started(desk, 1015)
    await user.send_text("5栋3单元801楼道灯坏了")
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: CARD in m.text)
    first = await user.press(card, "✅ 提交", wait_answer=False)
    second = await user.press(card, "✅ 提交", wait_answer=False)
    answers = [await user.wait_for_answer(first), await user.wait_for_answer(second)]
    await user.wait_for(lambda m: "投诉编号" in m.text)
    await user.expect_no_message(0.3)
    assert len(await desk.app.complaints.list()) == 1
    assert any(a.text == texts.STALE_BUTTON for a in answers)


async def test_cancel_in_the_middle_and_nothing_to_cancel(desk) -> None:
    user = await started(desk, 1016)
    await user.send_text("/cancel")
    await user.wait_for(lambda m: m.text == texts.NOTHING_TO_CANCEL)
    await user.send_text("楼道里的垃圾好几天没人清理了")
    await user.wait_for(lambda m: "位置" in m.text)
    await user.send_text("5栋3单元801")
    await user.wait_for(lambda m: "联系方式" in m.text)
    await user.press_reply_button(texts.CANCEL)
    await user.wait_for(lambda m: m.text == texts.CANCELLED)
    assert "我要投诉" in str(user.reply_keyboard)  # the menu is back
    await user.send_text("5栋3单元801楼道灯坏了")
    card = await user.wait_for(lambda m: CARD in m.text or "联系方式" in m.text)
    await user.send_text("13812345678")
    card = await user.wait_for(lambda m: CARD in m.text)
    await user.press(card, "❌ 取消")
    await user.wait_for_edit(card, lambda m: m.text == texts.CANCELLED)
    assert await desk.app.complaints.list() == []
