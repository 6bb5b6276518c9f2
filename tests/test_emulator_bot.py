"""End-to-end: a tiny aiogram bot polled by the real aiogram client against the emulator."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramRetryAfter
from aiogram.filters import Command, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from emulator import BotAPIEmulator
from emulator.testing import FakeClock, run_polling


class Echo(CallbackData, prefix="echo"):
    action: str
    n: int


def echo_router() -> Router:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        keyboard = ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text="分享电话", request_contact=True)],
                      [KeyboardButton(text="发送位置", request_location=True)]],
            resize_keyboard=True,
        )
        await message.answer("欢迎使用 <b>物业助手</b>", parse_mode="HTML", reply_markup=keyboard)

    @router.message(Command("doc"))
    async def doc(message: Message) -> None:
        await message.answer_document(BufferedInputFile("报告内容".encode(), filename="报告.txt"),
                                      caption="月度报告")

    @router.message(F.photo)
    async def photo(message: Message, bot: Bot) -> None:
        assert message.photo
        file = await bot.get_file(message.photo[-1].file_id)
        assert file.file_path
        buffer = io.BytesIO()
        await bot.download_file(file.file_path, buffer)
        size = len(buffer.getvalue())
        await message.answer(f"收到图片 {size} 字节 {message.caption or ''}".strip())

    @router.message(F.contact)
    async def contact(message: Message) -> None:
        assert message.contact and message.from_user
        own = message.contact.user_id == message.from_user.id
        await message.answer(f"电话 {message.contact.phone_number} {'本人' if own else '他人'}")

    @router.message(F.location)
    async def location(message: Message) -> None:
        assert message.location
        await message.answer(f"位置 {message.location.latitude:.2f},{message.location.longitude:.2f}")

    @router.message(F.sticker | F.voice)
    async def media(message: Message) -> None:
        await message.answer("贴纸" if message.sticker else f"语音 {message.voice and message.voice.duration}s")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        builder = InlineKeyboardBuilder()
        builder.button(text="提交", callback_data=Echo(action="submit", n=1))
        builder.button(text="取消", callback_data=Echo(action="cancel", n=1))
        await message.answer(f"你说: {message.text}", reply_markup=builder.as_markup())

    @router.callback_query(Echo.filter())
    async def pressed(query: CallbackQuery, callback_data: Echo) -> None:
        if not isinstance(query.message, Message):  # InaccessibleMessage: too old / unknown
            await query.answer("无效操作", show_alert=True)
            return
        await query.message.edit_text(f"已{'提交' if callback_data.action == 'submit' else '取消'}")
        await query.answer(f"done:{callback_data.action}")

    @router.callback_query()
    async def forged(query: CallbackQuery) -> None:
        # Data the bot never issued (or a message it can't see any more): refuse politely.
        await query.answer("无效操作", show_alert=True)

    return router


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[BotAPIEmulator]:
    async with BotAPIEmulator(clock=FakeClock()) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def running(emu: BotAPIEmulator) -> AsyncIterator[BotAPIEmulator]:
    bot = emu.make_bot()
    dp = Dispatcher()
    dp.include_router(echo_router())
    async with run_polling(dp, bot, emu):
        yield emu


async def test_start_text_button_edit(running: BotAPIEmulator) -> None:
    user = running.user(1001, first_name="张三")
    await user.start()
    welcome = await user.wait_for_message(timeout=5)
    assert welcome.text == "欢迎使用 物业助手"
    assert welcome.entities == [{"type": "bold", "offset": 5, "length": 4}]
    assert user.reply_keyboard is not None and welcome.keyboard[0][0]["request_contact"] is True

    await user.send_text("电梯坏了")
    reply = await user.wait_for(lambda m: "电梯" in m.text)
    assert reply.text == "你说: 电梯坏了"
    assert reply.buttons == {"提交": "echo:submit:1", "取消": "echo:cancel:1"}

    answer = await user.press(reply, "提交")
    assert answer.text == "done:submit"
    edited = await user.wait_for_edit(reply)
    assert edited is reply and reply.text == "已提交"
    assert reply.inline_keyboard == []  # editMessageText without reply_markup drops the keyboard
    assert [h["text"] for h in reply.history] == ["你说: 电梯坏了"]
    assert reply.raw["edit_date"] == reply.date

    # Same message ids per chat, strictly increasing across both directions.
    ids = [m.message_id for m in user.messages]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 4


async def test_press_by_callback_data_and_forged(running: BotAPIEmulator) -> None:
    user = running.user(1002)
    await user.send_text("hi")
    reply = await user.wait_for_message()
    answer = await user.press(reply, "echo:cancel:1")
    assert answer.text == "done:cancel"
    # A button that isn't on the message (forged data) and an unknown message id.
    forged = await user.press_callback(reply.message_id, "echo:delete:999x")
    assert forged.text == "无效操作" and forged.show_alert
    ghost = await user.press_callback(9999, "echo:submit:1")
    assert ghost.text == "无效操作"
    with pytest.raises(LookupError):
        await user.press(reply, "不存在")


async def test_photo_download_document_and_media(running: BotAPIEmulator) -> None:
    user = running.user(1003)
    sent = await user.send_photo("漏水照片")
    assert len(sent.photo) == 3 and sent.photo[0]["width"] < sent.photo[-1]["width"]
    largest = running.files[sent.photo[-1]["file_id"]]
    reply = await user.wait_for_message()
    assert reply.text == f"收到图片 {largest.size} 字节 漏水照片"
    assert running.calls("downloadFile")[-1].status == 200

    await user.send_command("doc")
    doc = await user.wait_for_message()
    stored = doc.file()
    assert stored is not None and stored.filename == "报告.txt"
    assert doc.file_bytes() == "报告内容".encode() and doc.caption == "月度报告"
    assert doc.document and doc.document["mime_type"] == "text/plain"

    await user.send_sticker()
    assert (await user.wait_for_message()).text == "贴纸"
    await user.send_voice(duration=3)
    assert (await user.wait_for_message()).text == "语音 3s"


async def test_album_contact_location(running: BotAPIEmulator) -> None:
    user = running.user(1004, first_name="李四")
    album = await user.send_album(3, caption="三张")
    assert len({m.media_group_id for m in album}) == 1 and album[0].media_group_id
    for _ in album:
        assert (await user.wait_for_message()).text.startswith("收到图片")

    await user.start()
    await user.wait_for_message()
    await user.press_reply_button("分享电话")
    assert (await user.wait_for_message()).text == f"电话 +86138{1004:08d} 本人"
    await user.send_contact("+8613900000000", "王五", user_id=42)
    assert (await user.wait_for_message()).text.endswith("他人")
    await user.press_reply_button("发送位置")
    assert (await user.wait_for_message()).text == "位置 31.23,121.47"


async def test_subscription_events_and_snapshot(running: BotAPIEmulator) -> None:
    events = running.subscribe(chat_id=1005)
    user = running.user(1005)
    await user.send_text("订阅")
    reply = await user.wait_for_message()
    await user.press(reply, "提交")
    await user.wait_for_edit(reply)
    kinds = []
    while not events.empty():
        kinds.append(events.get_nowait()["type"])
    assert kinds[:2] == ["user_message", "message_sent"]
    assert {"callback_query", "message_edited", "callback_answered"} <= set(kinds)
    snapshot = json.loads(json.dumps(running.snapshot(), ensure_ascii=False))
    chat = snapshot["bots"][str(running.bot().id)]["chats"]["1005"]
    assert [m["text"] for m in chat["messages"]] == ["订阅", "已提交"]


async def test_dates_come_from_injected_clock() -> None:
    clock = FakeClock(1_800_000_000.0)
    async with BotAPIEmulator(clock=clock) as emu:
        bot = emu.make_bot()
        dp = Dispatcher()
        dp.include_router(echo_router())
        async with run_polling(dp, bot, emu):
            user = emu.user(1006)
            clock.advance(60)
            sent = await user.send_text("时间")
            reply = await user.wait_for_message()
        assert sent.date == reply.date == 1_800_000_060


async def test_polling_survives_getupdates_faults(emu: BotAPIEmulator) -> None:
    # aiogram's polling loop backs off on any getUpdates error (429, 5xx) and carries on.
    emu.faults.retry_after("getUpdates", 1, times=1)
    emu.faults.server_error("getUpdates", 502, times=2)
    user = emu.user(1007)
    await user.send_text("还在吗")  # queued before the bot even starts
    bot = emu.make_bot()
    dp = Dispatcher()
    dp.include_router(echo_router())
    async with run_polling(dp, bot, emu):
        reply = await user.wait_for_message(timeout=5)
    assert reply.text == "你说: 还在吗"
    statuses = [c.status for c in emu.calls("getUpdates")]
    assert statuses[:4] == [429, 502, 502, 200]
    assert emu.calls("getUpdates")[0].response["parameters"] == {"retry_after": 1}


async def test_send_retry_after_reaches_handler(emu: BotAPIEmulator) -> None:
    # aiogram has no automatic retry for API methods: a 429 surfaces as TelegramRetryAfter with
    # retry_after, and the bot code decides. Here the handler honours it once.
    seen: list[int] = []
    router = Router()

    @router.message()
    async def handler(message: Message) -> None:
        try:
            await message.answer("第一次")
        except TelegramRetryAfter as exc:
            seen.append(exc.retry_after)
            await asyncio.sleep(0.01)  # a real bot would wait exc.retry_after seconds
            await message.answer("重试成功")

    emu.faults.retry_after("sendMessage", 3, times=1)
    bot = emu.make_bot()
    dp = Dispatcher()
    dp.include_router(router)
    async with run_polling(dp, bot, emu):
        user = emu.user(1008)
        await user.send_text("x")
        assert (await user.wait_for_message()).text == "重试成功"
    assert seen == [3]
    assert [c.status for c in emu.calls("sendMessage")] == [429, 200]


async def test_blocked_user_and_never_started(emu: BotAPIEmulator) -> None:
    from aiogram.exceptions import TelegramForbiddenError

    bot = emu.make_bot()
    try:
        stranger = emu.user(1009)
        with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation with a user"):
            await bot.send_message(stranger.id, "你好")
        await stranger.start()
        await bot.send_message(stranger.id, "你好")
        await stranger.block()
        assert stranger.blocked
        with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
            await bot.send_message(stranger.id, "还在吗")
        with pytest.raises(RuntimeError):
            await stranger.send_text("blocked users can't write")
        await stranger.unblock()
        await bot.send_message(stranger.id, "欢迎回来")
        kinds = [next(k for k in u if k != "update_id") for u in emu.bot().updates]
        assert kinds == ["message", "my_chat_member", "my_chat_member"]
    finally:
        await bot.session.close()
