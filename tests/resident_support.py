"""Helpers for the resident end-to-end tests (imported by tests/test_resident_*.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialogs.middlewares import FloodControlMiddleware

CARD = "请确认您的投诉"


@pytest.fixture(autouse=True)
async def no_api_errors(desk: Any) -> AsyncIterator[None]:
    """The bot never sends what Telegram refuses (too long, bad HTML, answered twice…).

    Any 4xx/5xx in the emulator's transcript is a bug, except answers a test injected as faults
    and getUpdates (a long poll cut short by a restart ends with 409, as on Telegram)."""
    yield
    bad = [(r.method, r.status, r.response.get("description"), r.params.get("text"))
           for r in desk.emu.transcript
           if r.status >= 400 and not r.faults and r.method != "getUpdates"]
    assert not bad, f"the Bot API refused calls: {bad}"


def flood_control(desk: Any) -> FloodControlMiddleware:
    """The flood control of the dispatcher polling now, so a test can hand it a clock."""
    return next(m for m in desk.dp.message.outer_middleware if isinstance(m, FloodControlMiddleware))


def bot_texts(user: Any) -> list[str]:
    return [m.text or m.caption or "" for m in user.bot_messages]


async def started(desk: Any, user_id: int, name: str = "业主") -> Any:
    user = desk.user(user_id, name)
    await user.start()
    await user.wait_for(lambda m: "欢迎" in m.text)
    return user


async def file_complaint(desk: Any, user: Any, text: str = "5栋3单元801楼道灯坏了,晚上很黑",
                         *, phone: str | None = "13812345678") -> str:
    """Text → (location) → (contact) → 提交; returns the number. Asks only what is missing."""
    await user.send_text(text)
    message = await user.wait_for(lambda m: CARD in m.text or "位置" in m.text or "联系方式" in m.text)
    if "位置" in message.text and CARD not in message.text:
        await user.send_text("5栋3单元801")
        message = await user.wait_for(lambda m: CARD in m.text or "联系方式" in m.text)
    if "联系方式" in message.text and CARD not in message.text:
        await user.send_text(phone or "🙈 匿名投诉")
        message = await user.wait_for(lambda m: CARD in m.text)
    await user.press(message, "✅ 提交")
    done = await user.wait_for(lambda m: "投诉编号" in m.text)
    (number,) = [c.number for c in await desk.app.complaints.list() if c.number in done.text]
    return number
