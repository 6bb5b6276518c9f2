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
