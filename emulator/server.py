"""A Telegram Bot API server for tests and the local sandbox, on aiohttp.

The real aiogram client talks HTTP to it exactly as to api.telegram.org; simulated users
(:class:`emulator.users.SimUser`) put updates in, and everything the bots do is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .faults import FaultInjector
from .markup import EntityParseError, parse_formatted, strip_formatted, utf16_len, validate_entities
from .media import guess_mime, image_extension, image_size
from .state import (
    BotAccount,
    CallbackAnswer,
    CallRecord,
    ChatMessage,
    ChatState,
    Notifier,
    StoredFile,
    UserProfile,
    wait_until,
)
from .webhook import WebhookDelivery, acceptable_url

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.client.telegram import TelegramAPIServer

    from .users import SimUser

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "123456789:AAEmulatorTestTokenForWuyeBot_000000"

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
CALLBACK_ANSWER_LIMIT = 200
UPLOAD_LIMIT = 50 * 1024 * 1024  # bots may upload up to 50 MB
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # and download (getFile) up to 20 MB
MAX_LONG_POLL = 50  # Telegram caps getUpdates timeout at 50 s

# Update types Telegram delivers when allowed_updates was never set.
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
        "business_message", "edited_business_message", "deleted_business_messages", "inline_query",
        "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query",
        "purchased_paid_media", "poll", "poll_answer", "my_chat_member", "chat_join_request",
        "chat_boost", "removed_chat_boost",
    }
)
CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
    }
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
_INLINE_ACTIONS = (
    "callback_data", "url", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)
_FILE_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TOKEN_RE = re.compile(r"^\d+:[\w-]+$")


class ApiError(Exception):
    """A Telegram-shaped error answer."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class Upload:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class _Call:
    bot: BotAccount
    params: dict[str, Any]
    files: dict[str, Upload]

    # -- typed parameter access; form bodies carry strings, JSON bodies real types
    def has(self, name: str) -> bool:
        return self.params.get(name) not in (None, "")

    def str(self, name: str) -> str | None:
        value = self.params.get(name)
        return None if value is None else str(value)

    def int(self, name: str, default: int | None = None, *, missing: str | None = None) -> int | None:
        value = self.params.get(name)
        if value in (None, ""):
            if missing:
                raise bad(missing)
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise bad(f"invalid {name} specified") from exc

    def bool(self, name: str) -> bool:
        value = self.params.get(name)
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("true", "1") if value is not None else False

    def json(self, name: str, error: str | None = None) -> Any:
        value = self.params.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise bad(error or f"can't parse {name} JSON object") from exc
        return value


Handler = Callable[["BotAPIEmulator", _Call], Awaitable[Any]]
_METHODS: dict[str, tuple[str, Handler]] = {}


def api_method(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _METHODS[name.lower()] = (name, fn)  # Telegram matches method names case-insensitively
        return fn

    return register


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _readable_params(params: dict[str, Any]) -> dict[str, Any]:
    # Nested objects arrive as JSON strings in form bodies; decode them for the transcript.
    result: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str) and value[:1] in ("{", "["):
            try:
                result[key] = json.loads(value)
                continue
            except ValueError:
                pass
        result[key] = value
    return result


class BotAPIEmulator:
    """In-process Telegram Bot API: ``async with BotAPIEmulator() as emu: bot = emu.make_bot()``."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        bot_username: str = "wuye_test_bot",
        bot_first_name: str = "物业助手",
        clock: Callable[[], float] = time.time,
        seed: int | None = 0,
        auto_register_bots: bool = True,
        strict_html: bool = True,
        callback_query_ttl: float | None = None,
    ) -> None:
        self.clock = clock
        self.strict_html = strict_html
        self.auto_register_bots = auto_register_bots
        self.callback_query_ttl = callback_query_ttl
        self.faults = FaultInjector(seed)
        self.bots: dict[str, BotAccount] = {}
        self.users: dict[int, UserProfile] = {}
        self.files: dict[str, StoredFile] = {}
        self.transcript: list[CallRecord] = []
        self.default_token = token
        self._rng = random.Random(seed)
        self._files_by_path: dict[str, StoredFile] = {}
        self._file_counter = 0
        self._subscribers: list[tuple[asyncio.Queue[dict[str, Any]], int | None, int | None]] = []
        self._calls_changed = Notifier()
        self._closing = False
        self._closing_changed = Notifier()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        # Webhook deliveries by bot token, and how often Telegram "redelivers" a delivered update.
        self.webhooks: dict[str, WebhookDelivery] = {}
        self.webhook_duplicate_probability = 0.0
        self.add_bot(token, username=bot_username, first_name=bot_first_name)

    # ------------------------------------------------------------------------------ lifecycle
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=UPLOAD_LIMIT + 10 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_get("/_emulator/state", self._handle_state)
        app.router.add_get("/_emulator/files/{file_id}", self._handle_raw_file)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._closing = False
        # Short shutdown timeout: pending long polls are woken in stop(), nothing should linger.
        self._runner = web.AppRunner(self.make_app(), shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        bound_port = sockets[0].getsockname()[1] if sockets else port
        self._base_url = f"http://{host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        for token in list(self.webhooks):
            await self._stop_webhook(token)
        self._closing = True
        self._closing_changed.notify()
        for bot in self.bots.values():
            bot.updates_changed.notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotAPIEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("emulator is not started")
        return self._base_url

    @property
    def api_server(self) -> TelegramAPIServer:
        from aiogram.client.telegram import TelegramAPIServer

        return TelegramAPIServer.from_base(self.base_url)

    def make_bot(self, token: str | None = None, **bot_kwargs: Any) -> Bot:
        """An aiogram Bot whose session talks to this emulator."""
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession

        token = token or self.default_token
        if token not in self.bots:
            self.add_bot(token)
        return Bot(token, session=AiohttpSession(api=self.api_server), **bot_kwargs)

    # ------------------------------------------------------------------------------ world setup
    def add_bot(self, token: str, *, username: str | None = None, first_name: str | None = None) -> BotAccount:
        if not _TOKEN_RE.match(token):
            raise ValueError(f"malformed bot token {token!r}")
        bot_id = int(token.split(":", 1)[0])
        account = self.bots.get(token)
        if account is None:
            account = BotAccount(token=token, id=bot_id, first_name=first_name or f"Bot {bot_id}",
                                 username=username or f"bot{bot_id}_bot")
            self.bots[token] = account
        else:
            account.username = username or account.username
            account.first_name = first_name or account.first_name
        return account

    def bot(self, token: str | BotAccount | None = None) -> BotAccount:
        if isinstance(token, BotAccount):
            return token
        return self.bots[token or self.default_token]

    def user(
        self,
        user_id: int,
        first_name: str | None = None,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        phone_number: str | None = None,
        bot: str | BotAccount | None = None,
        started: bool = False,
    ) -> SimUser:
        """A simulated user in a private chat with ``bot`` (default: the emulator's first bot).

        ``started=True`` pretends the user pressed START earlier, without sending an update.
        """
        from .users import SimUser

        profile = self.users.get(user_id)
        if profile is None:
            profile = UserProfile(id=user_id, first_name=first_name or f"User{user_id}")
            self.users[user_id] = profile
        elif first_name:
            profile.first_name = first_name
        for attr, value in (("last_name", last_name), ("username", username),
                            ("language_code", language_code), ("phone_number", phone_number)):
            if value is not None:
                setattr(profile, attr, value)
        chat = self.chat(self.bot(bot), user_id)
        if started and chat.status == "new":
            chat.status = "active"
        return SimUser(self, chat)

    def chat(self, bot: BotAccount, user_id: int) -> ChatState:
        chat = bot.chats.get(user_id)
        if chat is None:
            chat = ChatState(bot=bot, user=self.users[user_id])
            bot.chats[user_id] = chat
        return chat

    def now(self) -> int:
        return int(self.clock())

    # ------------------------------------------------------------------------------ observing
    def calls(self, method: str | None = None, *, bot: str | None = None) -> list[CallRecord]:
        bot_id = self.bot(bot).id if bot else None
        return [
            c for c in self.transcript
            if (method is None or c.method.lower() == method.lower()) and (bot_id is None or c.bot_id == bot_id)
        ]

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[CallRecord], bool] | None = None,
        *,
        after: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109 - the test-facing API takes timeout=
    ) -> CallRecord:
        """First transcript entry (index >= ``after``) for ``method`` matching ``predicate``."""

        def check() -> CallRecord | None:
            for record in self.transcript[after:]:
                if record.method.lower() == method.lower() and (predicate is None or predicate(record)):
                    return record
            return None

        result: CallRecord = await wait_until(self._calls_changed, check, timeout, f"a {method} call")
        return result

    async def wait_polling(self, token: str | None = None, *, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the bot has issued at least one getUpdates (its polling loop is running)."""
        account = self.bot(token)
        await wait_until(account.updates_changed, lambda: account.polls_started > 0, timeout, "getUpdates")

    def subscribe(
        self, *, bot: str | None = None, chat_id: int | None = None, maxsize: int = 10_000
    ) -> asyncio.Queue[dict[str, Any]]:
        """Queue of JSON-ready events: user_message, message_sent, message_edited, message_deleted,
        callback_query, callback_answered, chat_action, user_blocked, user_unblocked.
        When the queue is full the oldest event is dropped."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self._subscribers.append((queue, self.bot(bot).id if bot else None, chat_id))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers = [s for s in self._subscribers if s[0] is not queue]

    def emit(self, kind: str, chat: ChatState, **data: Any) -> None:
        event: dict[str, Any] = {"type": kind, "time": self.clock(), "bot_id": chat.bot.id,
                                 "chat_id": chat.chat_id, **data}
        for queue, bot_id, chat_id in self._subscribers:
            if (bot_id is not None and bot_id != chat.bot.id) or (chat_id is not None and chat_id != chat.chat_id):
                continue
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(copy.deepcopy(event))

    def snapshot(self) -> dict[str, Any]:
        """The whole world as JSON-serialisable data (file bytes excluded; see ``files``)."""
        return {
            "time": self.clock(),
            "bots": {str(b.id): b.to_dict() for b in self.bots.values()},
            "users": {str(u.id): u.as_user() for u in self.users.values()},
            "files": {fid: f.to_dict() for fid, f in self.files.items()},
        }

    # ------------------------------------------------------------------------------ files
    def _new_file_id(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choices(_FILE_ID_ALPHABET, k=48))

    def store_file(
        self,
        data: bytes,
        kind: str,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
        extension: str | None = None,
        source_url: str | None = None,
    ) -> StoredFile:
        prefixes = {"photo": "AgACAgUAAxkBAAI", "document": "BQACAgUAAxkBAAI", "voice": "AwACAgUAAxkBAAI",
                    "sticker": "CAACAgUAAxkBAAI", "video": "BAACAgUAAxkBAAI", "audio": "CQACAgUAAxkBAAI"}
        folders = {"photo": "photos", "document": "documents", "voice": "voice", "sticker": "stickers",
                   "video": "videos", "audio": "music", "animation": "animations"}
        self._file_counter += 1
        if extension is None:
            extension = filename.rsplit(".", 1)[-1] if filename and "." in filename else image_extension(data)
        digest = hashlib.sha1(data + (source_url or "").encode()).digest()
        unique = "AQAD" + base64.urlsafe_b64encode(digest[:9]).decode()
        size = image_size(data) if kind in ("photo", "sticker") else None
        stored = StoredFile(
            file_id=self._new_file_id(prefixes.get(kind, "BQACAgUAAxkBAAI")),
            file_unique_id=unique,
            file_path=f"{folders.get(kind, 'documents')}/file_{self._file_counter}.{extension}",
            data=data,
            kind=kind,
            filename=filename,
            mime_type=mime_type,
            width=size[0] if size else None,
            height=size[1] if size else None,
            source_url=source_url,
        )
        self.files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _input_file(self, call: _Call, field: str, kind: str, value: Any = None) -> StoredFile:
        """Resolve a file argument: attach://name, a direct multipart field, a known file_id or a URL."""
        if value is None:
            value = call.params.get(field)
            if value is None and field in call.files:
                return self._store_upload(call.files[field], kind)
        if not isinstance(value, str) or not value:
            raise bad(f"there is no {field} in the request")
        if value.startswith("attach://"):
            upload = call.files.get(value[len("attach://") :])
            if upload is None:
                raise bad("wrong file identifier/HTTP URL specified")
            return self._store_upload(upload, kind)
        if value.startswith(("http://", "https://")):
            # No internet here: remember the URL, there are no bytes to serve.
            name = value.rstrip("/").rsplit("/", 1)[-1] or "file"
            return self.store_file(b"", kind, filename=name, mime_type=guess_mime(name), extension="bin",
                                   source_url=value)
        stored = self.files.get(value)
        if stored is None:
            raise bad("wrong file identifier/HTTP URL specified")
        return stored

    def _store_upload(self, upload: Upload, kind: str) -> StoredFile:
        if len(upload.data) > UPLOAD_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        if kind == "photo":
            size = image_size(upload.data)
            if size is None:
                raise bad("IMAGE_PROCESS_FAILED")
            width, height = size
            if width + height > 10_000 or max(width, height) > 20 * max(1, min(width, height)):
                raise bad("PHOTO_INVALID_DIMENSIONS")
            return self.store_file(upload.data, "photo", filename=upload.filename, mime_type="image/" +
                                   image_extension(upload.data).replace("jpg", "jpeg"),
                                   extension=image_extension(upload.data))
        mime = upload.content_type
        if not mime or mime == "application/octet-stream":
            mime = guess_mime(upload.filename)
        return self.store_file(upload.data, kind, filename=upload.filename, mime_type=mime)

    @staticmethod
    def photo_sizes(stored: StoredFile) -> list[dict[str, Any]]:
        return [{"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                 "file_size": stored.size, "width": stored.width or 800, "height": stored.height or 600}]

    @staticmethod
    def _media_object(stored: StoredFile, kind: str) -> dict[str, Any]:
        data: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                                "file_size": stored.size}
        if kind in ("document", "audio", "video", "animation"):
            if stored.filename:
                data["file_name"] = stored.filename
            if stored.mime_type:
                data["mime_type"] = stored.mime_type
        if kind in ("video", "animation"):
            data.update(width=stored.width or 640, height=stored.height or 480, duration=1)
        if kind == "audio":
            data["duration"] = 1
        return data

    # ------------------------------------------------------------------------------ HTTP layer
    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, Upload]]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, Upload] = {}
        if not request.can_read_body:
            return params, files
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    data = await part.read(decode=False)
                    files[part.name] = Upload(part.name, part.filename,
                                              part.headers.get("Content-Type", ""), bytes(data))
                else:
                    params[part.name] = await part.text()
        elif ctype == "application/json":
            raw = await request.read()
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise bad("can't parse JSON request body") from exc
                if not isinstance(body, dict):
                    raise bad("JSON request body must be an object")
                params.update(body)
        else:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = Upload(key, value.filename, value.content_type, value.file.read())
                else:
                    params[key] = value
        return params, files

    def _account_for(self, token: str) -> BotAccount | None:
        account = self.bots.get(token)
        if account is None and self.auto_register_bots and _TOKEN_RE.match(token):
            account = self.add_bot(token)
        return account

    async def _handle_api(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        started = loop.time()
        arrived = self.clock()
        token = request.match_info["token"]
        requested = request.match_info["method"]
        entry = _METHODS.get(requested.lower())
        method = entry[0] if entry else requested
        account = self._account_for(token)
        params: dict[str, Any] = {}
        files: dict[str, Upload] = {}
        fired_names: list[str] = []
        try:
            params, files = await self._read_params(request)
            if account is None:
                raise ApiError(401, "Unauthorized")
            if entry is None:
                raise ApiError(404, "Not Found")
            delay, fault, fired = self.faults.pick(method, token)
            fired_names = [f"{r.status or 'delay'}:{r.method}" for r in fired]
            if delay:
                await self._sleep(delay)
            if fault is not None:
                raise ApiError(fault["error_code"], fault["description"], fault.get("parameters"))
            result = await entry[1](self, _Call(account, params, files))
            status, body = 200, {"ok": True, "result": result}
        except ApiError as exc:
            status, body = exc.status, exc.body()
        except Exception as exc:  # an emulator bug must still look like a Telegram answer
            logger.exception("emulator failed on %s", method)
            status, body = 500, {"ok": False, "error_code": 500,
                                 "description": f"Internal Server Error: emulator bug: {exc!r}"}
        self.transcript.append(
            CallRecord(
                time=arrived,
                bot_id=account.id if account else None,
                method=method,
                params=_readable_params(params),
                files={k: {"filename": u.filename, "size": len(u.data)} for k, u in files.items()},
                status=status,
                response=copy.deepcopy(body),
                duration=loop.time() - started,
                faults=fired_names,
            )
        )
        self._calls_changed.notify()
        return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _handle_file(self, request: web.Request) -> web.Response:
        account = self._account_for(request.match_info["token"])
        path = request.match_info["path"]
        stored = self._files_by_path.get(path)
        status = 200 if (account is not None and stored is not None) else 404
        self.transcript.append(
            CallRecord(time=self.clock(), bot_id=account.id if account else None, method="downloadFile",
                       params={"file_path": path}, files={}, status=status,
                       response={"ok": status == 200, "size": stored.size if stored else 0}, duration=0.0)
        )
        self._calls_changed.notify()
        if status != 200 or stored is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    async def _handle_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot(), dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _handle_raw_file(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            raise web.HTTPNotFound()
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    async def _sleep(self, delay: float) -> None:
        # Interruptible by stop(), so an injected slow answer never holds up shutdown.
        with contextlib.suppress(TimeoutError):
            await wait_until(self._closing_changed, lambda: self._closing, delay, "delay")

    # ------------------------------------------------------------------------------ shared checks
    def _chat_for_send(self, call: _Call, *, editing: bool = False) -> ChatState:
        raw = call.params.get("chat_id")
        if raw in (None, ""):
            raise bad("chat_id is empty")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError) as exc:
            raise bad("chat not found") from exc
        if chat_id not in self.users:
            raise bad("chat not found")
        chat = self.chat(call.bot, chat_id)
        if chat.status == "new" and not editing:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        if chat.status == "blocked":
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _formatted(
        self,
        call: _Call,
        *,
        text_key: str,
        parse_key: str,
        entities_key: str,
        limit: int,
        too_long: str,
        empty: str | None,
        params: dict[str, Any] | None = None,
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """Parse text/caption with its parse_mode; ``empty=None`` means the field is optional."""
        source = params if params is not None else call.params
        value = source.get(text_key)
        if value is None or value == "":
            if empty:
                raise bad(empty)
            return None, []
        text = str(value)
        parse_mode = source.get(parse_key)
        explicit = source.get(entities_key)
        try:
            if explicit not in (None, "") and not parse_mode:
                if isinstance(explicit, str):
                    explicit = json.loads(explicit)
                plain, entities = text, validate_entities(text, explicit)
            else:
                plain, entities = parse_formatted(text, parse_mode, strict_html=self.strict_html)
        except EntityParseError as exc:
            raise bad(f"can't parse entities: {exc}") from exc
        except ValueError as exc:
            if isinstance(explicit, str) and not parse_mode:
                raise bad(f"can't parse {entities_key} JSON object") from exc
            raise bad("unsupported parse_mode") from exc
        plain, entities = strip_formatted(plain, entities)
        if not plain:
            if empty:
                raise bad(empty)
            return None, []
        if utf16_len(plain) > limit:
            raise bad(too_long)
        return plain, entities

    def _text(self, call: _Call) -> tuple[str, list[dict[str, Any]]]:
        text, entities = self._formatted(call, text_key="text", parse_key="parse_mode", entities_key="entities",
                                         limit=TEXT_LIMIT, too_long="message is too long",
                                         empty="message text is empty")
        assert text is not None
        return text, entities

    def _caption(self, call: _Call, params: dict[str, Any] | None = None) -> tuple[str | None, list[dict[str, Any]]]:
        return self._formatted(call, text_key="caption", parse_key="parse_mode", entities_key="caption_entities",
                               limit=CAPTION_LIMIT, too_long="message caption is too long", empty=None,
                               params=params)

    def _reply_markup(self, call: _Call, *, inline_only: bool = False) -> dict[str, Any] | None:
        markup = call.json("reply_markup", "can't parse reply keyboard markup JSON object")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad("can't parse reply keyboard markup JSON object")
        markup = _drop_none(markup)
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad("can't parse inline keyboard button: InlineKeyboardMarkup must be an Array of Arrays")
            for row in rows:
                for button in row:
                    self._check_inline_button(button)
            return markup
        if inline_only:
            raise bad("inline keyboard expected")
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad("can't parse reply keyboard markup JSON object")
            normalised = []
            for row in rows:
                new_row = []
                for button in row:
                    button = {"text": button} if isinstance(button, str) else button
                    if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                        raise bad("can't parse keyboard button: Field \"text\" must be of type String")
                    new_row.append(button)
                normalised.append(new_row)
            return {**markup, "keyboard": normalised}
        if markup.get("remove_keyboard") or markup.get("force_reply"):
            return markup
        raise bad("can't parse reply keyboard markup JSON object")

    @staticmethod
    def _check_inline_button(button: Any) -> None:
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise bad("can't parse inline keyboard button: Field \"text\" must be of type String")
        if not button["text"].strip():
            raise bad("BUTTON_TEXT_INVALID")
        actions = [key for key in _INLINE_ACTIONS if key in button]
        if not actions:
            raise bad("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
        if "callback_data" in button:
            data = button["callback_data"]
            if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT:
                raise bad("BUTTON_DATA_INVALID")
        if "url" in button:
            url = str(button["url"])
            if not re.match(r"^(https?|tg)://\S+$", url):
                raise bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")

    def _reply_to(self, call: _Call, chat: ChatState) -> dict[str, Any] | None:
        params = call.json("reply_parameters")
        if isinstance(params, dict) and params.get("message_id") is not None:
            message_id, allow = int(params["message_id"]), bool(params.get("allow_sending_without_reply"))
        elif call.has("reply_to_message_id"):
            message_id, allow = call.int("reply_to_message_id") or 0, call.bool("allow_sending_without_reply")
        else:
            return None
        target = chat.messages.get(message_id)
        if target is None or target.deleted:
            if allow:
                return None
            raise bad("message to be replied not found")
        reply = copy.deepcopy(target.raw)
        reply.pop("reply_to_message", None)
        return reply

    def _add_bot_message(self, call: _Call, chat: ChatState, body: dict[str, Any],
                         markup: dict[str, Any] | None) -> ChatMessage:
        raw: dict[str, Any] = {"message_id": chat.new_message_id(), "from": call.bot.as_user(),
                               "chat": chat.user.as_chat(), "date": self.now()}
        reply_to = self._reply_to(call, chat)
        if reply_to:
            raw["reply_to_message"] = reply_to
        raw.update(body)
        if markup and "inline_keyboard" in markup:
            raw["reply_markup"] = markup
        message = ChatMessage(raw=raw, outgoing=True, sent_markup=markup, _emulator=self)
        chat.messages[message.message_id] = message
        chat.order.append(message)
        if markup and "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup and markup.get("remove_keyboard"):
            chat.reply_keyboard = None
        chat.changed.notify()
        self.emit("message_sent", chat, message=message.to_dict())
        return message

    def _message_to_edit(self, call: _Call) -> tuple[ChatState, ChatMessage]:
        if call.has("inline_message_id"):
            raise bad("MESSAGE_ID_INVALID")  # inline mode isn't emulated
        chat = self._chat_for_send(call, editing=True)
        message_id = call.int("message_id", missing="message identifier is not specified")
        message = chat.messages.get(message_id or 0)
        if message is None or message.deleted:
            raise bad("message to edit not found")
        if not message.outgoing:
            raise bad("message can't be edited")
        return chat, message

    def _apply_edit(self, chat: ChatState, message: ChatMessage, new_raw: dict[str, Any],
                    markup: dict[str, Any] | None) -> dict[str, Any]:
        def comparable(raw: dict[str, Any]) -> tuple[Any, ...]:
            return (raw.get("text"), raw.get("caption"), raw.get("entities") or [],
                    raw.get("caption_entities") or [], raw.get("reply_markup"))

        if comparable(new_raw) == comparable(message.raw):
            raise bad(NOT_MODIFIED)
        message.history.append(copy.deepcopy(message.raw))
        new_raw["edit_date"] = self.now()
        message.raw = new_raw
        message.sent_markup = markup
        message.version += 1
        chat.changed.notify()
        self.emit("message_edited", chat, message=message.to_dict())
        return copy.deepcopy(new_raw)

    @staticmethod
    def _set_or_drop(raw: dict[str, Any], key: str, value: Any) -> None:
        if value:
            raw[key] = value
        else:
            raw.pop(key, None)

    # ------------------------------------------------------------------------------ user side
    def deliver(self, chat: ChatState, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for the bot (called by SimUser)."""
        return chat.bot.push_update(kind, payload)

    def allowed(self, bot: BotAccount, kind: str) -> bool:
        if bot.allowed_updates:
            return kind in bot.allowed_updates
        return kind in DEFAULT_UPDATE_TYPES

    # ======================================================================== Bot API methods
    @api_method("getMe")
    async def _get_me(self, call: _Call) -> Any:
        return call.bot.get_me()

    @api_method("logOut")
    async def _log_out(self, call: _Call) -> Any:
        return True

    @api_method("close")
    async def _close(self, call: _Call) -> Any:
        return True

    @api_method("getUpdates")
    async def _get_updates(self, call: _Call) -> Any:
        bot = call.bot
        if bot.webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = call.int("offset", 0) or 0
        limit = min(max(call.int("limit", 100) or 100, 1), 100)
        timeout = min(max(call.int("timeout", 0) or 0, 0), MAX_LONG_POLL)
        allowed = call.json("allowed_updates")
        if allowed is not None:
            bot.allowed_updates = [str(x) for x in allowed] or None
        if offset > 0:
            bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
        elif offset < 0:
            bot.updates = bot.updates[offset:]
        # A newer getUpdates terminates the one still waiting, like Telegram does.
        bot.poll_generation += 1
        generation = bot.poll_generation
        bot.polls_started += 1
        bot.updates_changed.notify()

        def ready() -> Any:
            if generation != bot.poll_generation:
                return "conflict"
            if self._closing:
                return "closing"
            bot.updates = [u for u in bot.updates if self.allowed(bot, next(k for k in u if k != "update_id"))]
            return copy.deepcopy(bot.updates[:limit]) or None

        try:
            result = ready() or (await wait_until(bot.updates_changed, ready, timeout, "updates")
                                 if timeout else None)
        except TimeoutError:
            result = None
        if result == "conflict":
            raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                "make sure that only one bot instance is running")
        if result == "closing" or result is None:
            return []
        return result

    @api_method("setWebhook")
    async def _set_webhook(self, call: _Call) -> Any:
        url = call.str("url") or ""
        if url and not acceptable_url(url):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        call.bot.webhook_url = url
        if call.bool("drop_pending_updates"):
            call.bot.updates.clear()
        allowed = call.json("allowed_updates")
        if allowed is not None:
            call.bot.allowed_updates = [str(x) for x in allowed] or None
        await self._stop_webhook(call.bot.token)
        if url:
            delivery = WebhookDelivery(call.bot, url, secret_token=call.str("secret_token"),
                                       max_connections=call.int("max_connections", 40) or 40,
                                       duplicate_probability=self.webhook_duplicate_probability)
            self.webhooks[call.bot.token] = delivery
            delivery.start()
        return True

    @api_method("deleteWebhook")
    async def _delete_webhook(self, call: _Call) -> Any:
        call.bot.webhook_url = ""
        await self._stop_webhook(call.bot.token)
        if call.bool("drop_pending_updates"):
            call.bot.updates.clear()
        return True

    async def _stop_webhook(self, token: str) -> None:
        delivery = self.webhooks.pop(token, None)
        if delivery is not None:
            await delivery.stop()

    @api_method("getWebhookInfo")
    async def _get_webhook_info(self, call: _Call) -> Any:
        info: dict[str, Any] = {"url": call.bot.webhook_url, "has_custom_certificate": False,
                                "pending_update_count": len(call.bot.updates)}
        if call.bot.allowed_updates:
            info["allowed_updates"] = call.bot.allowed_updates
        return info

    @staticmethod
    def _commands_key(call: _Call) -> str:
        scope = call.json("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True) + "|" + (call.str("language_code") or "")

    @api_method("setMyCommands")
    async def _set_my_commands(self, call: _Call) -> Any:
        commands = call.json("commands")
        if not isinstance(commands, list):
            raise bad("commands must be an array")  # aiogram always sends one
        if len(commands) > 100:
            raise bad("too many commands specified")
        for command in commands:
            name = str(command.get("command", "")) if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name.lstrip("/")):
                raise bad("BOT_COMMAND_INVALID")
            description = str(command.get("description", ""))
            if not 1 <= len(description.strip()) <= 256:
                raise bad("command description must be 1-256 characters")
        call.bot.commands[self._commands_key(call)] = [
            {"command": c["command"].lstrip("/"), "description": c["description"]} for c in commands
        ]
        return True

    @api_method("getMyCommands")
    async def _get_my_commands(self, call: _Call) -> Any:
        return copy.deepcopy(call.bot.commands.get(self._commands_key(call), []))

    @api_method("deleteMyCommands")
    async def _delete_my_commands(self, call: _Call) -> Any:
        call.bot.commands.pop(self._commands_key(call), None)
        return True

    @api_method("sendMessage")
    async def _send_message(self, call: _Call) -> Any:
        chat = self._chat_for_send(call)
        text, entities = self._text(call)
        markup = self._reply_markup(call)
        body: dict[str, Any] = {"text": text}
        if entities:
            body["entities"] = entities
        return copy.deepcopy(self._add_bot_message(call, chat, body, markup).raw)

    @api_method("sendPhoto")
    async def _send_photo(self, call: _Call) -> Any:
        chat = self._chat_for_send(call)
        caption, entities = self._caption(call)
        markup = self._reply_markup(call)
        stored = self._input_file(call, "photo", "photo")
        body: dict[str, Any] = {"photo": self.photo_sizes(stored)}
        if caption:
            body["caption"] = caption
        if entities:
            body["caption_entities"] = entities
        return copy.deepcopy(self._add_bot_message(call, chat, body, markup).raw)

    async def _send_file(self, call: _Call, kind: str) -> Any:
        chat = self._chat_for_send(call)
        caption, entities = self._caption(call)
        markup = self._reply_markup(call)
        stored = self._input_file(call, kind, kind)
        body: dict[str, Any] = {kind: self._media_object(stored, kind)}
        if caption:
            body["caption"] = caption
        if entities:
            body["caption_entities"] = entities
        return copy.deepcopy(self._add_bot_message(call, chat, body, markup).raw)

    @api_method("sendDocument")
    async def _send_document(self, call: _Call) -> Any:
        return await self._send_file(call, "document")

    @api_method("sendVideo")
    async def _send_video(self, call: _Call) -> Any:
        return await self._send_file(call, "video")

    @api_method("sendAudio")
    async def _send_audio(self, call: _Call) -> Any:
        return await self._send_file(call, "audio")

    @api_method("sendMediaGroup")
    async def _send_media_group(self, call: _Call) -> Any:
        chat = self._chat_for_send(call)
        media = call.json("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise bad("wrong number of media in the album, must be 2-10")
        kinds = {item.get("type") for item in media if isinstance(item, dict)}
        if not kinds <= {"photo", "video", "document", "audio"} or None in kinds:
            raise bad("wrong media type in the album")
        if ("document" in kinds or "audio" in kinds) and len(kinds) > 1:
            raise bad("documents and audio can't be mixed with other media types in an album")
        # Validate everything first: Telegram sends all of the album or nothing.
        prepared = []
        for item in media:
            caption, entities = self._caption(call, params=item)
            stored = self._input_file(call, "media", item["type"], value=item.get("media"))
            prepared.append((item["type"], stored, caption, entities))
        group_id = str(self._rng.randrange(10**17, 10**18))
        result = []
        for kind, stored, caption, entities in prepared:
            body: dict[str, Any] = {"media_group_id": group_id}
            body[kind] = self.photo_sizes(stored) if kind == "photo" else self._media_object(stored, kind)
            if caption:
                body["caption"] = caption
            if entities:
                body["caption_entities"] = entities
            result.append(copy.deepcopy(self._add_bot_message(call, chat, body, None).raw))
        return result

    @api_method("editMessageText")
    async def _edit_message_text(self, call: _Call) -> Any:
        chat, message = self._message_to_edit(call)
        if "text" not in message.raw:
            raise bad("there is no text in the message to edit")
        text, entities = self._text(call)
        markup = self._reply_markup(call, inline_only=True)
        new_raw = copy.deepcopy(message.raw)
        new_raw["text"] = text
        self._set_or_drop(new_raw, "entities", entities)
        # Like Telegram: an edit without reply_markup removes the inline keyboard.
        self._set_or_drop(new_raw, "reply_markup", markup)
        return self._apply_edit(chat, message, new_raw, markup)

    @api_method("editMessageCaption")
    async def _edit_message_caption(self, call: _Call) -> Any:
        chat, message = self._message_to_edit(call)
        if "text" in message.raw:
            raise bad("there is no caption in the message to edit")
        caption, entities = self._caption(call)
        markup = self._reply_markup(call, inline_only=True)
        new_raw = copy.deepcopy(message.raw)
        self._set_or_drop(new_raw, "caption", caption)
        self._set_or_drop(new_raw, "caption_entities", entities)
        self._set_or_drop(new_raw, "reply_markup", markup)
        return self._apply_edit(chat, message, new_raw, markup)

    @api_method("editMessageReplyMarkup")
    async def _edit_message_reply_markup(self, call: _Call) -> Any:
        chat, message = self._message_to_edit(call)
        markup = self._reply_markup(call, inline_only=True)
        new_raw = copy.deepcopy(message.raw)
        self._set_or_drop(new_raw, "reply_markup", markup)
        return self._apply_edit(chat, message, new_raw, markup)

    @api_method("deleteMessage")
    async def _delete_message(self, call: _Call) -> Any:
        chat = self._chat_for_send(call, editing=True)
        message_id = call.int("message_id", missing="message identifier is not specified")
        message = chat.messages.get(message_id or 0)
        if message is None or message.deleted:
            raise bad("message to delete not found")
        message.deleted = True
        message.version += 1
        chat.changed.notify()
        self.emit("message_deleted", chat, message_id=message.message_id)
        return True

    @api_method("answerCallbackQuery")
    async def _answer_callback_query(self, call: _Call) -> Any:
        query_id = call.str("callback_query_id") or ""
        record = call.bot.callback_queries.get(query_id)
        expired = (record is not None and self.callback_query_ttl is not None
                   and self.clock() - record.created > self.callback_query_ttl)
        if record is None or record.answer is not None or expired:
            raise bad("query is too old and response timeout expired or query ID is invalid")
        text = call.str("text")
        if text is not None and len(text) > CALLBACK_ANSWER_LIMIT:
            raise bad("MESSAGE_TOO_LONG")
        record.answer = CallbackAnswer(query_id, text=text, show_alert=call.bool("show_alert"),
                                       url=call.str("url"), cache_time=call.int("cache_time", 0) or 0)
        chat = self.chat(call.bot, record.chat_id)
        chat.changed.notify()
        self.emit("callback_answered", chat, callback=record.to_dict())
        return True

    @api_method("sendChatAction")
    async def _send_chat_action(self, call: _Call) -> Any:
        chat = self._chat_for_send(call)
        action = call.str("action") or ""
        if action not in CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        chat.chat_actions.append((self.clock(), action))
        chat.changed.notify()
        self.emit("chat_action", chat, action=action)
        return True

    @api_method("getFile")
    async def _get_file(self, call: _Call) -> Any:
        stored = self.files.get(call.str("file_id") or "")
        if stored is None:
            raise bad("invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise bad("file is too big")
        return stored.as_file()

    @api_method("getChat")
    async def _get_chat(self, call: _Call) -> Any:
        chat_id = call.int("chat_id", missing="chat_id is empty") or 0
        if chat_id not in self.users:
            raise bad("chat not found")
        profile = self.users[chat_id]
        return {**profile.as_chat(), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False,
                                        "unique_gifts": False, "premium_subscription": False}}
