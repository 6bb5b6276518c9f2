"""The emulator's world: bots, private chats, messages, files, callback queries, the call log.

Everything here is plain data with ``to_dict()`` so a web sandbox can serialise it as JSON.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiogram.types import Message

    from .server import BotAPIEmulator


class Notifier:
    """Wakes every waiter on each change; waiters re-check their own condition."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self, timeout: float | None) -> None:  # noqa: ASYNC109
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)


# A deadline shared across re-checks, which asyncio.timeout can't express per wait.
async def wait_until(
    notifier: Notifier, check: Callable[[], Any], timeout: float | None, what: str  # noqa: ASYNC109
) -> Any:
    """Return the first truthy ``check()``; re-evaluated whenever ``notifier`` fires."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        try:
            await notifier.wait(remaining)
        except TimeoutError:
            continue  # loop once more: check() may have become true at the last moment


@dataclass
class StoredFile:
    """A file known to the emulator: uploaded by a bot or generated for a simulated user."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    kind: str  # photo, document, voice, sticker, video, audio, animation
    filename: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    source_url: str | None = None  # the bot sent an HTTP URL the emulator can't fetch

    @property
    def size(self) -> int:
        return len(self.data)

    def as_file(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "file_path": self.file_path,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_path": self.file_path,
            "kind": self.kind,
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "source_url": self.source_url,
        }


@dataclass
class ChatMessage:
    """One message in a chat, always in its latest form; ``history`` keeps earlier versions.

    ``raw`` is exactly the Telegram Message JSON the Bot API returned / delivered.
    """

    raw: dict[str, Any]
    outgoing: bool  # True: sent by the bot; False: sent by the simulated user
    sent_markup: dict[str, Any] | None = None  # as the bot sent it (inline, reply keyboard, remove, force_reply)
    history: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    version: int = 0
    _seen_version: int = 0
    _emulator: BotAPIEmulator | None = field(default=None, repr=False, compare=False)

    # ---- convenient views
    @property
    def message_id(self) -> int:
        return int(self.raw["message_id"])

    @property
    def chat_id(self) -> int:
        return int(self.raw["chat"]["id"])

    @property
    def date(self) -> int:
        return int(self.raw["date"])

    @property
    def text(self) -> str:
        """Text, or the caption of a media message; "" when there is neither (never None)."""
        return str(self.raw.get("text") or self.raw.get("caption") or "")

    @property
    def caption(self) -> str | None:
        return self.raw.get("caption")

    @property
    def entities(self) -> list[dict[str, Any]]:
        return list(self.raw.get("entities") or self.raw.get("caption_entities") or [])

    @property
    def reply_markup(self) -> dict[str, Any] | None:
        """The markup as sent by the bot: inline keyboard, reply keyboard, remove or force_reply.

        (Telegram's own Message JSON only carries inline keyboards; see ``raw``.)
        """
        return self.sent_markup if self.outgoing else self.raw.get("reply_markup")

    @property
    def inline_keyboard(self) -> list[list[dict[str, Any]]]:
        markup = self.raw.get("reply_markup") or {}
        return [list(row) for row in markup.get("inline_keyboard", [])]

    @property
    def keyboard(self) -> list[list[dict[str, Any]]]:
        """Reply-keyboard rows (buttons as dicts with at least "text")."""
        markup = self.sent_markup or {}
        return [list(row) for row in markup.get("keyboard", [])]

    @property
    def buttons(self) -> dict[str, str | None]:
        """Inline buttons flattened: text -> callback_data (or url / None for other kinds)."""
        result: dict[str, str | None] = {}
        for row in self.inline_keyboard:
            for button in row:
                result[button["text"]] = button.get("callback_data", button.get("url"))
        return result

    @property
    def photo(self) -> list[dict[str, Any]]:
        return list(self.raw.get("photo") or [])

    @property
    def document(self) -> dict[str, Any] | None:
        return self.raw.get("document")

    @property
    def media_group_id(self) -> str | None:
        return self.raw.get("media_group_id")

    @property
    def edited(self) -> bool:
        return "edit_date" in self.raw

    def file_id(self) -> str | None:
        """The main file of the message (largest photo size, document, voice, sticker…)."""
        if self.photo:
            return str(self.photo[-1]["file_id"])
        for key in ("document", "voice", "sticker", "video", "audio", "animation"):
            if self.raw.get(key):
                return str(self.raw[key]["file_id"])
        return None

    def file(self) -> StoredFile | None:
        file_id = self.file_id()
        if file_id is None or self._emulator is None:
            return None
        return self._emulator.files.get(file_id)

    def file_bytes(self) -> bytes:
        stored = self.file()
        if stored is None:
            raise LookupError(f"message {self.message_id} has no file")
        return stored.data

    def as_aiogram(self) -> Message:
        """The message parsed into aiogram's Message type (for typed assertions)."""
        from aiogram.types import Message

        return Message.model_validate(self.raw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "outgoing": self.outgoing,
            "text": self.text,
            "deleted": self.deleted,
            "version": self.version,
            "reply_markup": copy.deepcopy(self.reply_markup),
            "raw": copy.deepcopy(self.raw),
            "history": copy.deepcopy(self.history),
        }


@dataclass
class CallbackAnswer:
    """What the bot said in answerCallbackQuery."""

    callback_query_id: str
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "callback_query_id": self.callback_query_id,
            "text": self.text,
            "show_alert": self.show_alert,
            "url": self.url,
            "cache_time": self.cache_time,
        }


@dataclass
class CallbackQueryRecord:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created: float
    answer: CallbackAnswer | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "data": self.data,
            "created": self.created,
            "answer": self.answer.to_dict() if self.answer else None,
        }


@dataclass
class UserProfile:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "zh-hans"
    phone_number: str | None = None

    def as_user(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def as_chat(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        return data


@dataclass
class ChatState:
    """A private chat between one bot and one user."""

    bot: BotAccount
    user: UserProfile
    status: str = "new"  # new (never started) | active | blocked
    messages: dict[int, ChatMessage] = field(default_factory=dict)
    order: list[ChatMessage] = field(default_factory=list)
    next_message_id: int = 1
    read_cursor: int = 0  # index into bot_messages(): what the simulated user has "read"
    reply_keyboard: dict[str, Any] | None = None  # the reply keyboard currently shown
    chat_actions: list[tuple[float, str]] = field(default_factory=list)
    changed: Notifier = field(default_factory=Notifier)

    @property
    def chat_id(self) -> int:
        return self.user.id

    def new_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def bot_messages(self) -> list[ChatMessage]:
        return [m for m in self.order if m.outgoing]

    def to_dict(self) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "user": self.user.as_user(),
            "status": self.status,
            "reply_keyboard": copy.deepcopy(self.reply_keyboard),
            "messages": [m.to_dict() for m in self.order],
            "chat_actions": [{"time": t, "action": a} for t, a in self.chat_actions],
        }


@dataclass
class BotAccount:
    token: str
    id: int
    first_name: str
    username: str
    can_join_groups: bool = True
    can_read_all_group_messages: bool = False
    supports_inline_queries: bool = False
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # scope+lang key -> commands
    webhook_url: str = ""
    allowed_updates: list[str] | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)  # pending (unconfirmed) updates
    next_update_id: int = 100_000_001
    chats: dict[int, ChatState] = field(default_factory=dict)
    callback_queries: dict[str, CallbackQueryRecord] = field(default_factory=dict)
    updates_changed: Notifier = field(default_factory=Notifier)
    poll_generation: int = 0  # bumped by each getUpdates so the previous long poll can be terminated
    polls_started: int = 0

    def as_user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def get_me(self) -> dict[str, Any]:
        return {
            **self.as_user(),
            "can_join_groups": self.can_join_groups,
            "can_read_all_group_messages": self.can_read_all_group_messages,
            "supports_inline_queries": self.supports_inline_queries,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        self.updates.append(update)
        self.updates_changed.notify()
        return update

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "first_name": self.first_name,
            "webhook_url": self.webhook_url,
            "commands": copy.deepcopy(self.commands),
            "pending_updates": len(self.updates),
            "chats": {str(chat_id): chat.to_dict() for chat_id, chat in self.chats.items()},
        }


@dataclass
class CallRecord:
    """One Bot API call as the emulator saw it."""

    time: float  # emulator clock when the call arrived
    bot_id: int | None
    method: str
    params: dict[str, Any]
    files: dict[str, dict[str, Any]]
    status: int
    response: dict[str, Any]
    duration: float  # wall-clock seconds spent answering (includes injected delays / long polls)
    faults: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "bot_id": self.bot_id,
            "method": self.method,
            "params": self.params,
            "files": self.files,
            "status": self.status,
            "response": self.response,
            "duration": self.duration,
            "faults": self.faults,
        }
