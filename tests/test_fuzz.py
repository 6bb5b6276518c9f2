"""Property-based fuzzing of updates (hypothesis): random texts in any script, huge texts (within
Telegram's 4096), odd message types, random and half-forged callback data, from a resident, a
staff member and a stranger. Whatever arrives: no unhandled exception (nothing reaches the error
handler, which logs at ERROR), every button press is answered, the Bot API refuses nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emulator.users import command_entities
from tests.resident_support import flood_control, no_api_errors  # noqa: F401

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
WHO = st.sampled_from([3001, 801, 3099])  # a resident, a maintenance staff member, a stranger

any_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)
huge_text = st.text(st.sampled_from("楼道灯坏了漏水电梯5栋3单元801室,。!?<>&\"' abcXYZ/"), min_size=3000, max_size=4096)
command = st.builds(lambda c, a: f"/{c} {a}".strip(), st.sampled_from(
    ["start", "help", "my", "cancel", "tasks", "queue", "overdue", "stats", "join", "mydata", "forget", "xyz"]),
    st.text(max_size=40))
menu = st.sampled_from(["📝 我要投诉", "📋 我的投诉", "🚨 紧急求助", "☎️ 联系客服", "❓ 帮助", "取消", "🙈 匿名投诉",
                        "13812345678", "5栋3单元801", "你好", "谢谢"])
texts = st.one_of(any_text, huge_text, command, menu)


def _file(kind: str) -> dict[str, Any]:
    return {"file_id": f"F-{kind}", "file_unique_id": f"U-{kind}"}


odd_bodies = st.sampled_from([
    {"sticker": {**_file("sticker"), "type": "regular", "width": 512, "height": 512, "is_animated": False,
                 "is_video": False}},
    {"voice": {**_file("voice"), "duration": 3}},
    {"video_note": {**_file("vnote"), "length": 240, "duration": 3}},
    {"audio": {**_file("audio"), "duration": 30}},
    {"document": {**_file("doc"), "file_name": "a.pdf"}},
    {"animation": {**_file("gif"), "width": 1, "height": 1, "duration": 1}},
    {"dice": {"emoji": "🎲", "value": 6}},
    {"location": {"latitude": 31.2, "longitude": 121.4}},
    {"venue": {"location": {"latitude": 31.2, "longitude": 121.4}, "title": "南门", "address": "某路1号"}},
    {"contact": {"phone_number": "+8613900001111", "first_name": "别人"}},
    {"contact": {"phone_number": "+8613900002222", "first_name": "我", "user_id": 3001}},
    {"photo": [{**_file("photo"), "width": 90, "height": 90}], "caption": "楼道漏水 5栋"},
    {"video": {**_file("video"), "width": 1, "height": 1, "duration": 1}, "media_group_id": "g1"},
])
prefixes = st.sampled_from(["d", "c", "s", "sp", "f", "pv", "zz", ""])
callback_data = st.one_of(
    st.text(min_size=1, max_size=64).filter(lambda s: len(s.encode()) <= 64),
    st.builds(lambda p, parts: ":".join([p, *parts])[:64], prefixes,
              st.lists(st.one_of(st.text(max_size=12), st.sampled_from(
                  ["submit", "open", "accept", "take", "rate", "forget_yes", "TS20261125-0001", "3001", "-1",
                   "99999999999999999999"])), max_size=4)))


async def _ready(desk: Any) -> None:
    if getattr(desk, "fuzz_ready", False):
        return
    flood_control(desk).limit = 10**6  # we want every update handled, not the flood answer
    await desk.staff(801, "王师傅", "maintenance")
    resident = desk.user(3001, "张三")
    await resident.start()
    await resident.wait_for(lambda m: "欢迎" in m.text)
    desk.fuzz_ready = True


async def _flush(user: Any) -> None:
    """One user's updates run in order: when this press is answered, the one before is done."""
    await user.press_callback(1, "zz:flush", timeout=5)


def _errors(caplog: Any) -> list[str]:
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    caplog.clear()  # one example's records must not fail the next
    return errors


@SETTINGS
@given(who=WHO, text=texts)
@example(who=3001, text="5栋3单元801楼道\x00灯坏了,漏水")  # NUL: PostgreSQL refuses it in text
@example(who=3001, text="\u202e\u200b<b>电梯</b> & 停了 🙂" * 3)
async def test_random_texts(desk: Any, caplog: Any, who: int, text: str) -> None:
    await _ready(desk)
    user = desk.user(who)
    body: dict[str, Any] = {"text": text}
    if entities := command_entities(text):
        body["entities"] = entities
    await user._send(body)
    await _flush(user)
    assert not _errors(caplog)


@SETTINGS
@given(who=WHO, body=odd_bodies, caption=st.one_of(st.none(), any_text))
async def test_odd_message_types(desk: Any, caplog: Any, who: int, body: dict[str, Any], caption: str | None) -> None:
    await _ready(desk)
    user = desk.user(who)
    body = dict(body)
    if caption is not None and any(k in body for k in ("photo", "video", "document", "voice", "audio")):
        body["caption"] = caption
    await user._send(body)
    await _flush(user)
    assert not _errors(caplog)


@SETTINGS
@given(who=WHO, data=callback_data, on_real_message=st.booleans())
async def test_random_callback_data(desk: Any, caplog: Any, who: int, data: str, on_real_message: bool) -> None:
    await _ready(desk)
    user = desk.user(who)
    target = user.bot_messages[-1].message_id if on_real_message and user.bot_messages else 10**6
    answer = await user.press_callback(target, data, timeout=15)  # a press is always answered
    assert answer is not None
    await _flush(user)
    assert not _errors(caplog)
