"""Simulated Telegram users: they send updates to a bot and read what it answers."""

# ruff: noqa: ASYNC109 - ``timeout=`` is the intended test-facing API of the wait helpers

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .markup import utf16_len
from .media import guess_mime, image_size, make_png
from .state import CallbackAnswer, CallbackQueryRecord, ChatMessage, ChatState, wait_until

if TYPE_CHECKING:
    from .server import BotAPIEmulator

DEFAULT_PHOTO_SIZES: tuple[tuple[int, int], ...] = ((90, 68), (320, 240), (800, 600))
# Telegram marks /commands anywhere in a text (Latin letters, digits, underscores; optional @bot).
_COMMAND_RE = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")


def command_entities(text: str) -> list[dict[str, Any]]:
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group(0))}
        for m in _COMMAND_RE.finditer(text)
    ]


class SimUser:
    """One user in a private chat with one bot. Handles are cheap; state lives in the ChatState.

    Reading model: every bot message is "unread" until ``wait_for_message``/``wait_for`` returns it
    (or a later one), so a reply that arrives before the test starts waiting is never missed.
    """

    def __init__(self, emulator: BotAPIEmulator, chat: ChatState) -> None:
        self.emulator = emulator
        self.chat = chat

    def __repr__(self) -> str:
        return f"<SimUser {self.id} {self.profile.first_name!r} with @{self.bot.username}>"

    @property
    def id(self) -> int:
        return self.chat.user.id

    @property
    def profile(self) -> Any:
        return self.chat.user

    @property
    def bot(self) -> Any:
        return self.chat.bot

    def via(self, token: str) -> SimUser:
        """The same person in a private chat with another bot served by this emulator."""
        return self.emulator.user(self.id, bot=token)

    # ------------------------------------------------------------------------------ sending
    async def _send(self, body: dict[str, Any]) -> ChatMessage:
        chat = self.chat
        if chat.status == "blocked":
            raise RuntimeError(f"user {self.id} blocked the bot; call unblock() first")
        chat.status = "active"
        raw: dict[str, Any] = {"message_id": chat.new_message_id(), "from": self.profile.as_user(),
                               "chat": self.profile.as_chat(), "date": self.emulator.now(), **body}
        message = ChatMessage(raw=raw, outgoing=False, _emulator=self.emulator)
        chat.messages[message.message_id] = message
        chat.order.append(message)
        self.emulator.deliver(chat, "message", copy.deepcopy(raw))
        chat.changed.notify()
        self.emulator.emit("user_message", chat, message=message.to_dict())
        await asyncio.sleep(0)  # let the bot's long poll pick the update up
        return message

    async def send_text(self, text: str, *, reply_to: ChatMessage | int | None = None) -> ChatMessage:
        body: dict[str, Any] = {"text": text}
        entities = command_entities(text)
        if entities:
            body["entities"] = entities
        self._add_reply(body, reply_to)
        return await self._send(body)

    async def send_command(self, command: str, args: str = "") -> ChatMessage:
        text = "/" + command.lstrip("/") + (f" {args}" if args else "")
        return await self.send_text(text)

    async def start(self, payload: str = "") -> ChatMessage:
        """Press START (optionally via a deep link ``t.me/bot?start=payload``)."""
        return await self.send_command("start", payload)

    def _add_reply(self, body: dict[str, Any], reply_to: ChatMessage | int | None) -> None:
        if reply_to is None:
            return
        message_id = reply_to if isinstance(reply_to, int) else reply_to.message_id
        target = self.chat.messages.get(message_id)
        if target is not None:
            reply = copy.deepcopy(target.raw)
            reply.pop("reply_to_message", None)
            body["reply_to_message"] = reply

    def _photo_sizes(self, image: bytes | None, sizes: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
        rng = self.emulator._rng
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        result = []
        blobs: list[bytes] = []
        if image is None:
            blobs = [make_png(w, h, colour) for w, h in sizes]
        else:
            real = image_size(image) or (800, 600)
            blobs = [make_png(90, max(1, 90 * real[1] // max(real[0], 1)), colour), image]
        for blob in blobs:
            stored = self.emulator.store_file(blob, "photo", mime_type="image/png")
            result.extend(self.emulator.photo_sizes(stored))
        return result

    async def send_photo(
        self,
        caption: str | None = None,
        *,
        image: bytes | None = None,
        sizes: Sequence[tuple[int, int]] = DEFAULT_PHOTO_SIZES,
        media_group_id: str | None = None,
    ) -> ChatMessage:
        """A photo in several sizes (generated PNGs unless ``image`` bytes are given)."""
        body: dict[str, Any] = {"photo": self._photo_sizes(image, sizes)}
        if caption:
            body["caption"] = caption
            entities = command_entities(caption)
            if entities:
                body["caption_entities"] = entities
        if media_group_id:
            body["media_group_id"] = media_group_id
        return await self._send(body)

    async def send_album(self, count: int = 3, *, caption: str | None = None) -> list[ChatMessage]:
        """An album: ``count`` photo messages sharing one media_group_id (caption on the first)."""
        group_id = str(self.emulator._rng.randrange(10**17, 10**18))
        return [
            await self.send_photo(caption if i == 0 else None, media_group_id=group_id) for i in range(count)
        ]

    async def send_document(
        self, data: bytes, filename: str = "file.txt", *, mime_type: str | None = None, caption: str | None = None
    ) -> ChatMessage:
        mime = mime_type or guess_mime(filename)
        stored = self.emulator.store_file(data, "document", filename=filename, mime_type=mime)
        body: dict[str, Any] = {"document": {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                                             "file_name": filename, "mime_type": mime, "file_size": stored.size}}
        if caption:
            body["caption"] = caption
        return await self._send(body)

    async def share_contact(self, phone_number: str | None = None) -> ChatMessage:
        """What a ``request_contact`` button sends: the user's own contact with their user_id."""
        phone = phone_number or self.profile.phone_number or f"+86138{self.id % 10**8:08d}"
        self.profile.phone_number = phone
        contact: dict[str, Any] = {"phone_number": phone, "first_name": self.profile.first_name,
                                   "user_id": self.id}
        if self.profile.last_name:
            contact["last_name"] = self.profile.last_name
        return await self._send({"contact": contact})

    async def send_contact(
        self, phone_number: str, first_name: str, *, last_name: str | None = None, user_id: int | None = None
    ) -> ChatMessage:
        """Someone else's contact (or a forged one, with any ``user_id``)."""
        contact: dict[str, Any] = {"phone_number": phone_number, "first_name": first_name}
        if last_name:
            contact["last_name"] = last_name
        if user_id is not None:
            contact["user_id"] = user_id
        return await self._send({"contact": contact})

    async def send_location(self, latitude: float = 31.2304, longitude: float = 121.4737) -> ChatMessage:
        return await self._send({"location": {"latitude": latitude, "longitude": longitude}})

    async def send_sticker(self, emoji: str = "👍") -> ChatMessage:
        stored = self.emulator.store_file(make_png(512, 512, (250, 200, 0)), "sticker", mime_type="image/png")
        sticker = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "type": "regular",
                   "width": 512, "height": 512, "is_animated": False, "is_video": False, "emoji": emoji,
                   "set_name": "EmulatorStickers", "file_size": stored.size}
        return await self._send({"sticker": sticker})

    async def send_voice(self, duration: int = 2, *, data: bytes | None = None) -> ChatMessage:
        # Not a decodable Opus stream, just bytes with the Ogg magic: enough for download tests.
        blob = data if data is not None else b"OggS\x00\x02" + bytes(self.emulator._rng.randrange(256)
                                                                     for _ in range(256))
        stored = self.emulator.store_file(blob, "voice", mime_type="audio/ogg", extension="oga")
        voice = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "duration": duration,
                 "mime_type": "audio/ogg", "file_size": stored.size}
        return await self._send({"voice": voice})

    async def press_reply_button(self, text: str) -> ChatMessage:
        """Press a button of the reply keyboard currently shown (contact/location buttons included)."""
        keyboard = self.chat.reply_keyboard
        buttons = [b for row in (keyboard or {}).get("keyboard", []) for b in row]
        for button in buttons:
            if button["text"] == text:
                if button.get("request_contact"):
                    return await self.share_contact()
                if button.get("request_location"):
                    return await self.send_location()
                return await self.send_text(text)
        shown = [b["text"] for b in buttons]
        raise LookupError(f"no reply-keyboard button {text!r}; shown: {shown}")

    # ------------------------------------------------------------------------------ callbacks
    async def press(
        self, message: ChatMessage | int, button: str, *, timeout: float = 5.0, wait_answer: bool = True
    ) -> CallbackAnswer | CallbackQueryRecord:
        """Press an inline button (matched by text, then by callback_data) on a bot message.

        Returns the bot's answerCallbackQuery (waiting up to ``timeout``), or the query record
        when ``wait_answer=False``.
        """
        message_id = message if isinstance(message, int) else message.message_id
        current = self.chat.messages.get(message_id)
        if current is None or current.deleted:
            raise LookupError(f"message {message_id} is not in the chat (deleted?)")
        buttons = [b for row in current.inline_keyboard for b in row]
        chosen = next((b for b in buttons if b["text"] == button), None)
        chosen = chosen or next((b for b in buttons if b.get("callback_data") == button), None)
        if chosen is None:
            raise LookupError(f"no inline button {button!r} on message {message_id}; has {current.buttons}")
        if "callback_data" not in chosen:
            raise ValueError(f"button {button!r} is not a callback button: {chosen}")
        return await self.press_callback(message_id, chosen["callback_data"], timeout=timeout,
                                         wait_answer=wait_answer)

    async def press_callback(
        self, message_id: int, data: str, *, timeout: float = 5.0, wait_answer: bool = True
    ) -> CallbackAnswer | CallbackQueryRecord:
        """Send a callback_query with arbitrary ``data`` for any message id (forged presses)."""
        if self.chat.status == "blocked":
            raise RuntimeError(f"user {self.id} blocked the bot; call unblock() first")
        emu, chat = self.emulator, self.chat
        query_id = str(emu._rng.randrange(10**18, 10**19))
        record = CallbackQueryRecord(id=query_id, user_id=self.id, chat_id=chat.chat_id, message_id=message_id,
                                     data=data, created=emu.clock())
        chat.bot.callback_queries[query_id] = record
        target = chat.messages.get(message_id)
        if target is not None and not target.deleted:
            message: dict[str, Any] = copy.deepcopy(target.raw)
        else:  # what Telegram sends for a message the bot can no longer access
            message = {"chat": self.profile.as_chat(), "message_id": message_id, "date": 0}
        payload = {"id": query_id, "from": self.profile.as_user(), "message": message,
                   "chat_instance": str(-(chat.bot.id * 1_000_003 + self.id)), "data": data}
        emu.deliver(chat, "callback_query", payload)
        emu.emit("callback_query", chat, callback=record.to_dict())
        if not wait_answer:
            return record
        return await self.wait_for_answer(record, timeout=timeout)

    async def wait_for_answer(self, record: CallbackQueryRecord, *, timeout: float = 5.0) -> CallbackAnswer:
        answer: CallbackAnswer = await wait_until(
            self.chat.changed, lambda: record.answer, timeout, f"answerCallbackQuery for {record.data!r}"
        )
        return answer

    # ------------------------------------------------------------------------------ blocking
    async def block(self) -> None:
        """Block the bot: sends my_chat_member (member -> kicked); bot messages then get 403."""
        await self._membership("kicked")

    async def unblock(self) -> None:
        await self._membership("member")

    async def _membership(self, new_status: str) -> None:
        emu, chat = self.emulator, self.chat
        old_status = "kicked" if chat.status == "blocked" else "member"
        chat.status = "blocked" if new_status == "kicked" else "active"
        bot_user = chat.bot.as_user()
        new_member: dict[str, Any] = {"user": bot_user, "status": new_status}
        if new_status == "kicked":
            new_member["until_date"] = 0
        old_member: dict[str, Any] = {"user": bot_user, "status": old_status}
        if old_status == "kicked":
            old_member["until_date"] = 0
        emu.deliver(chat, "my_chat_member", {"chat": self.profile.as_chat(), "from": self.profile.as_user(),
                                             "date": emu.now(), "old_chat_member": old_member,
                                             "new_chat_member": new_member})
        chat.changed.notify()
        emu.emit("user_blocked" if new_status == "kicked" else "user_unblocked", chat)
        await asyncio.sleep(0)

    @property
    def blocked(self) -> bool:
        return self.chat.status == "blocked"

    # ------------------------------------------------------------------------------ reading
    @property
    def messages(self) -> list[ChatMessage]:
        """Every message of the chat, both directions, oldest first (deleted ones included)."""
        return list(self.chat.order)

    @property
    def bot_messages(self) -> list[ChatMessage]:
        return [m for m in self.chat.bot_messages() if not m.deleted]

    @property
    def last_message(self) -> ChatMessage | None:
        messages = self.bot_messages
        return messages[-1] if messages else None

    @property
    def reply_keyboard(self) -> dict[str, Any] | None:
        return self.chat.reply_keyboard

    @property
    def chat_actions(self) -> list[str]:
        return [action for _, action in self.chat.chat_actions]

    def unread(self) -> list[ChatMessage]:
        return self.chat.bot_messages()[self.chat.read_cursor :]

    def mark_read(self) -> None:
        self.chat.read_cursor = len(self.chat.bot_messages())

    async def wait_for_message(self, timeout: float = 5.0) -> ChatMessage:
        """The next unread message from the bot."""
        return await self.wait_for(lambda m: True, timeout=timeout, what="a message from the bot")

    async def wait_for(
        self, predicate: Callable[[ChatMessage], Any], timeout: float = 5.0, *, what: str | None = None
    ) -> ChatMessage:
        """The first unread bot message matching ``predicate``; it and the ones before it become read."""

        def check() -> ChatMessage | None:
            unread = self.unread()
            for index, message in enumerate(unread):
                if predicate(message):
                    self.chat.read_cursor += index + 1
                    message._seen_version = message.version
                    return message
            return None

        try:
            found: ChatMessage = await wait_until(self.chat.changed, check, timeout, what or "a matching message")
        except TimeoutError as exc:
            texts = [m.text for m in self.unread()]
            raise TimeoutError(f"{exc}; unread bot messages: {texts}") from None
        return found

    async def wait_for_edit(
        self, message: ChatMessage, predicate: Callable[[ChatMessage], Any] | None = None, timeout: float = 5.0
    ) -> ChatMessage:
        """Wait until the bot edits (or deletes) ``message`` beyond the version last seen here,
        or, with ``predicate``, until the message satisfies it."""

        def check() -> ChatMessage | None:
            if predicate is not None:
                return message if predicate(message) else None
            return message if message.version > message._seen_version else None

        await wait_until(self.chat.changed, check, timeout, f"an edit of message {message.message_id}")
        message._seen_version = message.version
        return message

    async def expect_no_message(self, within: float = 0.2) -> None:
        """Assert the bot sends nothing new (unread) during ``within`` seconds."""
        try:
            message = await self.wait_for_message(timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message from the bot: {message.text!r}")

    def to_dict(self) -> dict[str, Any]:
        return self.chat.to_dict()
