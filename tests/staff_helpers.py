"""Shared pieces of the staff-side end-to-end tests (tests/test_staff_*.py).

``fast_desk`` (fixture name ``desk``) overrides the conftest fixture for the modules importing it:
the same bot, with the per-chat spacing of the outbox shortened (a rate limit on an injected
monotonic clock is still a rate limit; the tests need not wait a real second per message) and a
check at the end that Telegram refused nothing the test did not provoke.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.client.default import DefaultBotProperties

from bot.container import App
from complaints.model import Contact, Location, Urgency
from complaints.services import NewComplaint
from emulator import BotAPIEmulator
from notifier.ratelimit import RateLimits
from tests.conftest import Desk

FAST = RateLimits(per_chat_interval=0.02)
PHONE = "13812345678"


def refused(emu: BotAPIEmulator) -> list[str]:
    """Bot API calls answered 4xx that no injected fault explains (bad HTML, too long, not modified)."""
    return [f"{c.method} {c.status}: {c.response.get('description')}" for c in emu.transcript
            if 400 <= c.status < 500 and not c.faults and c.method != "getUpdates"]


@pytest.fixture(name="desk")
async def fast_desk(app: App, bot_emulator: BotAPIEmulator, classifier: object) -> AsyncIterator[Desk]:
    from notifier.runtime import Background

    bot = bot_emulator.make_bot(default=DefaultBotProperties(parse_mode="HTML"))
    d = Desk(bot_emulator, app, bot, classifier)
    d.background = Background(app, bot, timer_interval=3600, outbox_idle=0.05, limits=FAST)  # type: ignore[attr-defined]
    d.expected_refusals = 0  # type: ignore[attr-defined]  # a test that provokes a 403 raises this
    try:
        async with d.restart():
            await d.background.start()  # type: ignore[attr-defined]
            try:
                yield d
            finally:
                await d.background.stop()  # type: ignore[attr-defined]
    finally:
        await bot.session.close()
    unexplained = refused(bot_emulator)
    assert len(unexplained) == d.expected_refusals, unexplained  # type: ignore[attr-defined]


async def resident(d: Desk, user_id: int, name: str) -> Any:
    """A resident who has pressed /start (so the bot may write to them)."""
    user = d.user(user_id, name)
    await user.start()
    await user.wait_for(lambda m: "欢迎" in m.text)
    return user


async def file(d: Desk, user: Any, text: str = "5栋电梯按钮失灵,按了没反应", *, category: str = "maintenance",
               urgency: str = Urgency.GENERAL, emotion: str = "calm", anonymous: bool = False,
               attachments: list | None = None) -> str:
    """A complaint as the intake dialog would register it (the dialog itself is tested elsewhere)."""
    person = await d.app.roster.resident_for_telegram(user.id, user.profile.first_name)
    complaint = await d.app.complaints.submit(NewComplaint(
        text=text, category=category, urgency=urgency, emotion=emotion, anonymous=anonymous,
        location=Location(building="5", unit="1"), contact=Contact(name=user.profile.first_name, phone=PHONE),
        resident_id=person.id, attachments=list(attachments or [])), by=person.as_actor())
    d.background.outbox.notify()  # type: ignore[attr-defined]
    return complaint.number


def texts_to(user: Any) -> list[str]:
    return [m.text or m.caption or "" for m in user.bot_messages]
