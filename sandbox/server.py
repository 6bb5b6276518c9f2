"""The sandbox web page and its small JSON API, served by the same process as the bot.

GET  /                      the page (sandbox/static, no external resources)
GET  /api/state             the clock, the bot and every chat
GET  /api/chats/<user_id>   one chat
GET  /api/events            Server-Sent Events: which chat changed, callback answers, typing, clock
POST /api/send              {user_id, text}
POST /api/photo             multipart (user_id, file, caption) or JSON {user_id, caption}: a sample photo
POST /api/contact           {user_id}: the contact-sharing button
POST /api/location          {user_id}
POST /api/press             {user_id, message_id, data}: an inline button
POST /api/reply-button      {user_id, text}: a reply-keyboard button
POST /api/clock             {advance: "1h" | "1d" | "7d" | "09:00"}
GET  /files/<file_id>       a photo or document (the Excel report downloads with its name)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from emulator.media import image_size
from sandbox.demo import sample_photo

if TYPE_CHECKING:
    from emulator import ChatMessage, SimUser
    from sandbox.runtime import Sandbox

logger = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
SANDBOX_KEY: web.AppKey[Sandbox] = web.AppKey("sandbox")
TEXT_LIMIT = 4096
PHOTO_LIMIT = 10 * 1024 * 1024
KEEPALIVE = 15.0


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _error(status: int, message: str) -> web.HTTPException:
    cls = {400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict,
           413: web.HTTPRequestEntityTooLarge, 415: web.HTTPUnsupportedMediaType}[status]
    body = json.dumps({"ok": False, "error": message}, ensure_ascii=False)
    if cls is web.HTTPRequestEntityTooLarge:
        return cls(max_size=PHOTO_LIMIT, actual_size=0, text=body, content_type="application/json")
    return cls(text=body, content_type="application/json")


# ---- views: what the page draws -------------------------------------------------------------------
def message_view(message: ChatMessage) -> dict[str, Any]:
    """A Telegram message reduced to what a chat window shows (UTF-16 entity offsets kept as sent)."""
    raw = message.raw
    view: dict[str, Any] = {"id": message.message_id, "out": message.outgoing, "date": raw.get("date", 0),
                            "edited": message.edited}
    if "text" in raw:
        view.update(text=raw["text"], entities=raw.get("entities") or [])
    elif raw.get("caption"):
        view.update(text=raw["caption"], entities=raw.get("caption_entities") or [])
    if raw.get("photo"):
        largest = raw["photo"][-1]
        view["photo"] = {"file_id": largest["file_id"], "width": largest.get("width"),
                         "height": largest.get("height")}
    for kind in ("document", "video", "audio", "voice", "animation", "sticker"):
        if raw.get(kind):
            media = raw[kind]
            view["media"] = {"kind": kind, "file_id": media.get("file_id"), "file_name": media.get("file_name"),
                             "mime_type": media.get("mime_type"), "size": media.get("file_size"),
                             "emoji": media.get("emoji")}
    if raw.get("contact"):
        view["contact"] = {k: raw["contact"].get(k) for k in ("phone_number", "first_name", "last_name")}
    if raw.get("location"):
        view["location"] = raw["location"]
    if raw.get("reply_to_message"):
        quoted = raw["reply_to_message"]
        view["reply_to"] = {"id": quoted.get("message_id"),
                            "text": (quoted.get("text") or quoted.get("caption") or "")[:80]}
    keyboard = message.inline_keyboard if message.outgoing else []
    if keyboard:
        view["inline_keyboard"] = [[{"text": b.get("text", ""), "data": b.get("callback_data"), "url": b.get("url")}
                                    for b in row] for row in keyboard]
    return view


def chat_view(sandbox: Sandbox, telegram_id: int) -> dict[str, Any]:
    person = sandbox.person(telegram_id)
    assert person is not None
    chat = sandbox.sim(telegram_id).chat
    keyboard = chat.reply_keyboard
    # Which message brought the keyboard: the page re-shows a one-time keyboard only for a new one.
    keyboard_from = next((m.message_id for m in reversed(chat.order)
                          if m.outgoing and m.sent_markup and "keyboard" in m.sent_markup), None)
    return {
        "user_id": person.telegram_id, "name": person.name, "role": person.role, "role_label": person.role_label,
        "hint": person.hint, "commands": [{"command": c, "description": d} for c, d in person.commands],
        "status": chat.status,
        "messages": [message_view(m) for m in chat.order if not m.deleted],
        "reply_keyboard": None if not keyboard else {
            "rows": [[{"text": b["text"], "contact": bool(b.get("request_contact")),
                       "location": bool(b.get("request_location"))} for b in row] for row in keyboard["keyboard"]],
            "one_time": bool(keyboard.get("one_time_keyboard")), "message_id": keyboard_from,
            "placeholder": keyboard.get("input_field_placeholder"),
        },
    }


def state_view(sandbox: Sandbox) -> dict[str, Any]:
    assert sandbox.emulator is not None
    bot = sandbox.emulator.bot()
    return {"clock": sandbox.time_info(), "bot": {"name": bot.first_name, "username": bot.username},
            "chats": [chat_view(sandbox, p.telegram_id) for p in sandbox.cast]}


# ---- handlers -------------------------------------------------------------------------------------
async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def get_state(request: web.Request) -> web.Response:
    return _json(state_view(request.app[SANDBOX_KEY]))


async def get_chat(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    try:
        user_id = int(request.match_info["user_id"])
    except ValueError:
        raise _error(404, "没有这个聊天") from None
    if sandbox.person(user_id) is None:
        raise _error(404, "没有这个聊天")
    return _json(chat_view(sandbox, user_id))


async def events(request: web.Request) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    queue = sandbox.listen()
    try:
        await response.write(b"event: hello\ndata: {}\n\n")
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")  # proxies and browsers drop silent streams
                continue
            if event is None:  # the sandbox is stopping
                break
            data = json.dumps(event, ensure_ascii=False)
            await response.write(f"data: {data}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        sandbox.unlisten(queue)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def _body(request: web.Request) -> dict[str, Any]:
    # JSON only: a form post from some other web page cannot reach the sandbox without a CORS preflight.
    if request.content_type != "application/json":
        raise _error(415, "请求需为 application/json")
    try:
        body = await request.json()
    except ValueError:
        raise _error(400, "JSON 格式错误") from None
    if not isinstance(body, dict):
        raise _error(400, "JSON 应为对象")
    return body


def _user(request: web.Request, body: dict[str, Any]) -> SimUser:
    sandbox = request.app[SANDBOX_KEY]
    try:
        user_id = int(body.get("user_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _error(400, "缺少 user_id") from None
    if sandbox.person(user_id) is None:
        raise _error(404, "沙盒中没有这个用户")
    return sandbox.sim(user_id)


def _sent(message: ChatMessage) -> web.Response:
    return _json({"ok": True, "message": message_view(message)})


async def send(request: web.Request) -> web.Response:
    body = await _body(request)
    user = _user(request, body)
    text = str(body.get("text") or "").strip()
    if not text:
        raise _error(400, "消息不能为空")
    if len(text) > TEXT_LIMIT:
        raise _error(400, f"消息太长(最多 {TEXT_LIMIT} 字)")
    return _sent(await user.send_text(text))


async def photo(request: web.Request) -> web.Response:
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        fields = {k: v for k, v in form.items() if not isinstance(v, web.FileField)}
        user = _user(request, fields)
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise _error(400, "请选择一张图片")
        data = upload.file.read(PHOTO_LIMIT + 1)
        if len(data) > PHOTO_LIMIT:
            raise _error(413, "图片太大(最多 10 MB)")
        if image_size(data) is None:
            raise _error(400, "只能发送图片(JPEG、PNG、GIF)")
        caption = str(fields.get("caption") or "").strip() or None
    else:
        body = await _body(request)
        user = _user(request, body)
        data = sample_photo()
        caption = str(body.get("caption") or "").strip() or None
    return _sent(await user.send_photo(caption[:1024] if caption else None, image=data))


async def contact(request: web.Request) -> web.Response:
    body = await _body(request)
    return _sent(await _user(request, body).share_contact())


async def location(request: web.Request) -> web.Response:
    body = await _body(request)
    return _sent(await _user(request, body).send_location())


async def press(request: web.Request) -> web.Response:
    body = await _body(request)
    user = _user(request, body)
    try:
        message_id = int(body.get("message_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _error(400, "缺少 message_id") from None
    data = str(body.get("data") or "")
    target = user.chat.messages.get(message_id)
    buttons = [b.get("callback_data") for row in (target.inline_keyboard if target else []) for b in row]
    if data not in buttons:
        # A button the message no longer has (edited away): Telegram would not send it either.
        raise _error(409, "这个按钮已失效")
    record = await user.press_callback(message_id, data, wait_answer=False)
    return _json({"ok": True, "callback_query_id": record.id})


async def reply_button(request: web.Request) -> web.Response:
    body = await _body(request)
    user = _user(request, body)
    try:
        message = await user.press_reply_button(str(body.get("text") or ""))
    except LookupError:
        raise _error(409, "键盘上没有这个按钮") from None
    return _sent(message)


async def clock(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        info = await request.app[SANDBOX_KEY].fast_forward(str(body.get("advance") or ""))
    except ValueError as exc:
        raise _error(400, str(exc)) from None
    return _json({"ok": True, **info})


async def file(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX_KEY]
    assert sandbox.emulator is not None
    stored = sandbox.emulator.files.get(request.match_info["file_id"])
    if stored is None:
        raise _error(404, "文件不存在")
    mime = stored.mime_type or "application/octet-stream"
    headers = {"Cache-Control": "private, max-age=3600"}
    if stored.kind not in ("photo", "sticker"):
        name = stored.filename or stored.file_path.rsplit("/", 1)[-1]
        ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
        # RFC 6266/5987: browsers use filename* and keep the Chinese name of the Excel report.
        headers["Content-Disposition"] = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return web.Response(body=stored.data, content_type=mime, headers=headers)


def make_web_app(sandbox: Sandbox) -> web.Application:
    app = web.Application(client_max_size=PHOTO_LIMIT + 1024 * 1024)
    app[SANDBOX_KEY] = sandbox
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, append_version=False)
    app.router.add_get("/api/state", get_state)
    app.router.add_get("/api/chats/{user_id}", get_chat)
    app.router.add_get("/api/events", events)
    app.router.add_post("/api/send", send)
    app.router.add_post("/api/photo", photo)
    app.router.add_post("/api/contact", contact)
    app.router.add_post("/api/location", location)
    app.router.add_post("/api/press", press)
    app.router.add_post("/api/reply-button", reply_button)
    app.router.add_post("/api/clock", clock)
    app.router.add_get("/files/{file_id}", file)
    return app
