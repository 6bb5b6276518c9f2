"""The emulator's Bot API surface: limits, markup, edits, faults, getUpdates, raw HTTP bodies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
)

from emulator import DEFAULT_TOKEN, BotAPIEmulator, EntityParseError, make_png, parse_formatted
from emulator.users import SimUser


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[BotAPIEmulator]:
    async with BotAPIEmulator() as emulator:
        yield emulator


@pytest_asyncio.fixture
async def bot(emu: BotAPIEmulator) -> AsyncIterator[Bot]:
    bot = emu.make_bot()
    yield bot
    await bot.session.close()


@pytest_asyncio.fixture
async def user(emu: BotAPIEmulator) -> SimUser:
    return emu.user(2001, first_name="王五", started=True)


async def post(emu: BotAPIEmulator, method: str, *, token: str = DEFAULT_TOKEN, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(f"{emu.base_url}/bot{token}/{method}",
                                                                **kwargs) as resp:
        return resp.status, await resp.json()


def kb(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in pairs]])


# ------------------------------------------------------------------------------ limits


async def test_text_length_after_entity_parsing(bot: Bot, user: SimUser) -> None:
    await bot.send_message(user.id, "字" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(user.id, "字" * 4097)
    # Markup doesn't count: 4096 visible characters inside tags are fine.
    await bot.send_message(user.id, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    # Surrogate pairs count twice (UTF-16), as in Telegram's entity offsets.
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(user.id, "😀" * 2049)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(user.id, "   \n ")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(user.id, "<b> </b>", parse_mode="HTML")


async def test_caption_and_callback_data_limits(bot: Bot, user: SimUser) -> None:
    png = BufferedInputFile(make_png(10, 10), filename="a.png")
    await bot.send_photo(user.id, png, caption="c" * 1024)
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(user.id, png, caption="c" * 1025)
    await bot.send_message(user.id, "ok", reply_markup=kb(("a", "x" * 64), ("b", "楼" * 21)))
    for data in ("x" * 65, "楼" * 22):  # bytes, not characters
        with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
            await bot.send_message(user.id, "bad", reply_markup=kb(("a", data)))
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(user.id, BufferedInputFile(b"not an image", filename="x.png"))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<b>未闭合", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("换行<br>", 'Unsupported start tag "br" at byte offset 6'),
        ("<div>x</div>", 'Unsupported start tag "div"'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
        ("A & B", 'Unescaped "&"'),
        ("1 < 2", 'Unsupported start tag ""'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<a href='x'", "Unclosed start tag"),
    ],
)
async def test_html_rejected(bot: Bot, user: SimUser, text: str, error: str) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as info:
        await bot.send_message(user.id, text, parse_mode="HTML")
    assert error in info.value.message


async def test_html_allowed_tags(bot: Bot, user: SimUser) -> None:
    text = (
        '<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>'
        '<del>d</del><span class="tg-spoiler">p</span><tg-spoiler>q</tg-spoiler>'
        '<a href="https://example.com/?a=1&amp;b=2">l</a><code>c</code>'
        '<pre><code class="language-python">x</code></pre><blockquote>bq</blockquote>'
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji> &lt;&gt;&amp;&quot;&#20013;'
    )
    message = await bot.send_message(user.id, text, parse_mode="HTML")
    assert message.text is not None and message.text.endswith(' <>&"中')
    types = [e.type for e in message.entities or []]
    assert types == ["bold", "bold", "italic", "italic", "underline", "underline", "strikethrough",
                     "strikethrough", "strikethrough", "spoiler", "spoiler", "text_link", "code", "pre",
                     "blockquote", "custom_emoji"]
    pre = next(e for e in message.entities or [] if e.type == "pre")
    assert pre.language == "python"


async def test_markdown_v2_and_bad_parse_mode(bot: Bot, user: SimUser) -> None:
    message = await bot.send_message(user.id, r"*粗* _斜_ [链接](https://e.com) 编号 TS\-1\.", parse_mode="MarkdownV2")
    assert message.text == "粗 斜 链接 编号 TS-1."
    assert [e.type for e in message.entities or []] == ["bold", "italic", "text_link"]
    with pytest.raises(TelegramBadRequest, match=r"Character '\.' is reserved"):
        await bot.send_message(user.id, "编号 1.", parse_mode="MarkdownV2")
    with pytest.raises(TelegramBadRequest, match="Can't find end of Bold entity"):
        await bot.send_message(user.id, "*粗", parse_mode="MarkdownV2")
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await bot.send_message(user.id, "x", parse_mode="BBCode")


def test_parser_offsets_are_utf16() -> None:
    text, entities = parse_formatted("😀<b>粗</b>", "HTML")
    assert text == "😀粗" and entities == [{"type": "bold", "offset": 2, "length": 1}]
    with pytest.raises(EntityParseError):
        parse_formatted("a > b", "HTML")
    assert parse_formatted("a > b & c", "HTML", strict_html=False)[0] == "a > b & c"


# ------------------------------------------------------------------------------ chats and edits


async def test_chat_errors(bot: Bot, emu: BotAPIEmulator) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "x")
    emu.user(3, started=True)
    status, body = await post(emu, "sendPhoto", data={"chat_id": "3"})
    assert (status, body["description"]) == (400, "Bad Request: there is no photo in the request")


async def test_edits(bot: Bot, user: SimUser) -> None:
    sent = await bot.send_message(user.id, "待处理", reply_markup=kb(("受理", "accept")))
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=user.id, message_id=sent.message_id + 100)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(text="待处理", chat_id=user.id, message_id=sent.message_id,
                                    reply_markup=kb(("受理", "accept")))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=user.id, message_id=sent.message_id,
                                            reply_markup=kb(("受理", "accept")))
    edited = await bot.edit_message_reply_markup(chat_id=user.id, message_id=sent.message_id,
                                                 reply_markup=kb(("完成", "done")))
    assert not isinstance(edited, bool) and edited.edit_date is not None
    message = user.last_message
    assert message is not None and message.buttons == {"完成": "done"} and message.version == 1
    await bot.edit_message_text(text="已受理", chat_id=user.id, message_id=sent.message_id)
    assert message.text == "已受理" and message.buttons == {}
    assert [h.get("reply_markup") is not None for h in message.history] == [True, True]

    user_message = await user.send_text("我的消息")
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text(text="x", chat_id=user.id, message_id=user_message.message_id)
    assert await bot.delete_message(user.id, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(user.id, sent.message_id)


async def test_callback_answer_rules(bot: Bot, user: SimUser, emu: BotAPIEmulator) -> None:
    sent = await bot.send_message(user.id, "x", reply_markup=kb(("A", "a")))
    query = await user.press(sent.message_id, "A", wait_answer=False)
    with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):
        await bot.answer_callback_query(query.id, text="长" * 201)
    assert await bot.answer_callback_query(query.id, text="好")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id, text="again")
    answer = await user.wait_for_answer(query)  # type: ignore[arg-type]
    assert answer.text == "好"


async def test_media_group_document_chat_action_commands(bot: Bot, user: SimUser, emu: BotAPIEmulator) -> None:
    png = make_png(30, 20)
    album = await bot.send_media_group(user.id, [
        InputMediaPhoto(media=BufferedInputFile(png, "1.png"), caption="第一张"),
        InputMediaPhoto(media=BufferedInputFile(png, "2.png")),
    ])
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    assert album[0].photo and album[0].photo[-1].width == 30
    with pytest.raises(TelegramBadRequest):
        await bot.send_media_group(user.id, [InputMediaPhoto(media=BufferedInputFile(png, "1.png")),
                                             InputMediaDocument(media=BufferedInputFile(b"d", "d.txt"))])
    # Re-sending by file_id reuses the stored file.
    again = await bot.send_photo(user.id, album[0].photo[-1].file_id)
    assert again.photo and again.photo[-1].file_unique_id == album[0].photo[-1].file_unique_id
    assert await bot.send_chat_action(user.id, "typing")
    assert user.chat_actions == ["typing"]
    with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
        await bot.send_chat_action(user.id, "dancing")  # type: ignore[arg-type]
    from aiogram.types import BotCommand

    assert await bot.set_my_commands([BotCommand(command="start", description="开始")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Cmd", description="x")])
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")


# ------------------------------------------------------------------------------ faults


async def test_fault_next_n_calls_and_errors(bot: Bot, user: SimUser, emu: BotAPIEmulator) -> None:
    rule = emu.faults.retry_after("sendMessage", 7, times=2)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as info:
            await bot.send_message(user.id, "x")
        assert info.value.retry_after == 7
    await bot.send_message(user.id, "x")
    assert rule.hits == 2 and rule not in emu.faults.rules
    emu.faults.server_error("sendMessage", 500, times=1)
    with pytest.raises(TelegramServerError, match="Internal Server Error"):
        await bot.send_message(user.id, "x")
    emu.faults.error("getMe", 400, "Bad Request: custom", times=None)
    with pytest.raises(TelegramBadRequest, match="custom"):
        await bot.get_me()
    emu.faults.clear("getMe")
    assert (await bot.get_me()).username == "wuye_test_bot"
    # Nothing was delivered for the failed calls: only one message reached the chat.
    assert len(user.bot_messages) == 1


async def test_fault_probability_is_seeded(bot: Bot, user: SimUser, emu: BotAPIEmulator) -> None:
    async def pattern(seed: int) -> list[bool]:
        emu.faults.clear()
        emu.faults.seed(seed)
        emu.faults.server_error("sendMessage", 502, times=None, probability=0.5)
        results = []
        for _ in range(12):
            try:
                await bot.send_message(user.id, "x")
                results.append(True)
            except TelegramServerError:
                results.append(False)
        return results

    first, second = await pattern(7), await pattern(7)
    assert first == second and True in first and False in first


async def test_slow_fault(bot: Bot, user: SimUser, emu: BotAPIEmulator) -> None:
    emu.faults.slow("sendMessage", 0.3, times=1)
    started = time.monotonic()
    await bot.send_message(user.id, "慢")
    assert time.monotonic() - started >= 0.3
    assert emu.calls("sendMessage")[-1].duration >= 0.3
    started = time.monotonic()
    await bot.send_message(user.id, "快")
    assert time.monotonic() - started < 0.3


# ------------------------------------------------------------------------------ getUpdates


async def test_get_updates_offset_limit_timeout(bot: Bot, emu: BotAPIEmulator) -> None:
    users = [emu.user(3000 + i) for i in range(3)]
    for u in users:
        await u.send_text(f"from {u.id}")
    first = await bot.get_updates(limit=2)
    assert [u.message and u.message.text for u in first] == ["from 3000", "from 3001"]
    again = await bot.get_updates()  # not confirmed yet: delivered again
    assert [u.update_id for u in again][:2] == [u.update_id for u in first]
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    assert len(rest) == 1
    assert await bot.get_updates(offset=rest[-1].update_id + 1, timeout=0) == []

    # A long poll returns as soon as an update arrives.
    async def later() -> None:
        await asyncio.sleep(0.1)
        await users[0].send_text("late")

    started = time.monotonic()
    task = asyncio.create_task(later())
    got = await bot.get_updates(offset=rest[-1].update_id + 1, timeout=10)
    await task
    assert got[0].message and got[0].message.text == "late"
    assert time.monotonic() - started < 2


async def test_allowed_updates_and_conflicts(bot: Bot, emu: BotAPIEmulator) -> None:
    user = emu.user(3100)
    await user.send_text("a")
    await user.block()
    updates = await bot.get_updates(allowed_updates=["message"])
    assert [u.event_type for u in updates] == ["message"]
    await user.unblock()
    await user.send_text("b")
    updates = await bot.get_updates(offset=updates[-1].update_id + 1)  # filter is remembered
    assert [u.event_type for u in updates] == ["message"]

    # A second getUpdates terminates the one still waiting.
    waiting = asyncio.create_task(bot.get_updates(offset=updates[-1].update_id + 1, timeout=10))
    await asyncio.sleep(0.05)
    await bot.get_updates(offset=updates[-1].update_id + 1)
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await waiting
    assert await bot.set_webhook("https://example.com/hook")
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == []


# ------------------------------------------------------------------------------ raw HTTP


async def test_unknown_method_and_token(emu: BotAPIEmulator) -> None:
    status, body = await post(emu, "sendTelepathy", data={"chat_id": "1"})
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    strict = BotAPIEmulator(auto_register_bots=False)
    async with strict:
        status, body = await post(strict, "getMe", token="999:unknown")
        assert (status, body["description"]) == (401, "Unauthorized")
    bot = emu.make_bot()
    with pytest.raises(TelegramNotFound):
        from aiogram.methods import GetMe

        class Nope(GetMe):
            __api_method__ = "noSuchMethod"

        await bot(Nope())
    await bot.session.close()


async def test_json_form_and_multipart_bodies(emu: BotAPIEmulator) -> None:
    user = emu.user(4000, started=True)
    markup = {"inline_keyboard": [[{"text": "好", "callback_data": "ok"}]]}
    status, body = await post(emu, "sendMessage", json={"chat_id": user.id, "text": "json", "reply_markup": markup})
    assert status == 200 and body["result"]["reply_markup"] == markup
    status, body = await post(emu, "sendMessage",
                              data={"chat_id": str(user.id), "text": "form", "reply_markup": json.dumps(markup)})
    assert status == 200 and body["result"]["text"] == "form"
    status, body = await post(emu, "sendMessage", data={"chat_id": str(user.id), "text": "x",
                                                        "reply_markup": "{broken"})
    assert status == 400 and "can't parse reply keyboard markup" in body["description"]
    # Direct multipart field upload (not attach://), as some clients do.
    form = aiohttp.FormData()
    form.add_field("chat_id", str(user.id))
    form.add_field("document", b"%PDF-1.4", filename="invoice.pdf", content_type="application/pdf")
    status, body = await post(emu, "sendDocument", data=form)
    assert status == 200, body
    document = body["result"]["document"]
    assert document["file_name"] == "invoice.pdf" and document["mime_type"] == "application/pdf"
    # ...and download it back through getFile + /file/bot<token>/<path>.
    status, info = await post(emu, "getFile", json={"file_id": document["file_id"]})
    async with aiohttp.ClientSession() as session, session.get(
        f"{emu.base_url}/file/bot{DEFAULT_TOKEN}/{info['result']['file_path']}"
    ) as resp:
        assert resp.status == 200 and await resp.read() == b"%PDF-1.4"
    record = emu.calls("sendDocument")[-1]
    assert record.files == {"document": {"filename": "invoice.pdf", "size": 8}}
    assert emu.calls("sendMessage")[0].params["reply_markup"] == markup  # decoded in the transcript


async def test_several_bots_and_user_photo_download(emu: BotAPIEmulator) -> None:
    other_token = "555000:OtherBotToken"
    emu.add_bot(other_token, username="staff_bot", first_name="员工助手")
    main_bot, staff_bot = emu.make_bot(), emu.make_bot(other_token)
    try:
        assert (await main_bot.get_me()).username == "wuye_test_bot"
        me = await staff_bot.get_me()
        assert (me.id, me.username) == (555000, "staff_bot")
        resident = emu.user(5000)
        staff_view = resident.via(other_token)
        await staff_view.send_photo()
        assert await main_bot.get_updates() == []  # each bot has its own updates
        updates = await staff_bot.get_updates()
        photo = updates[0].message and updates[0].message.photo
        assert photo
        file = await staff_bot.get_file(photo[0].file_id)
        data = await staff_bot.download_file(file.file_path or "")
        assert data is not None and data.read().startswith(b"\x89PNG")
    finally:
        await main_bot.session.close()
        await staff_bot.session.close()


async def test_waits_state_endpoint_and_subscription_filters(bot: Bot, emu: BotAPIEmulator) -> None:
    alice, bob = emu.user(6001, started=True), emu.user(6002, started=True)
    only_bob = emu.subscribe(chat_id=bob.id)
    await bot.send_message(alice.id, "给 alice")
    await bob.expect_no_message(within=0.05)
    with pytest.raises(TimeoutError, match="unread bot messages: \\[\\]"):
        await bob.wait_for_message(timeout=0.05)
    await bot.send_message(bob.id, "给 bob")
    assert (await bob.wait_for_message()).text == "给 bob"
    assert only_bob.qsize() == 1 and only_bob.get_nowait()["message"]["text"] == "给 bob"
    emu.unsubscribe(only_bob)
    async with aiohttp.ClientSession() as session, session.get(f"{emu.base_url}/_emulator/state") as resp:
        state = await resp.json()
    chats = state["bots"][str(emu.bot().id)]["chats"]
    assert chats["6001"]["messages"][0]["text"] == "给 alice"
    record = await emu.wait_for_call("sendMessage", lambda c: c.params["chat_id"] == str(bob.id))
    assert record.ok and record.response["result"]["text"] == "给 bob"
