"""Shared fixtures: every database test runs on SQLite and, when configured, on PostgreSQL.

PostgreSQL tests need ``WUYE_TEST_POSTGRES_URL`` (``.ci/run`` sets it). Each test session creates
its own database on that server, so parallel runs and a developer's data never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.container import App, build_app
from bot.settings import Settings
from complaints.clock import ManualClock
from storage.tables import Base

SHANGHAI = ZoneInfo("Asia/Shanghai")
POSTGRES_URL = os.environ.get("WUYE_TEST_POSTGRES_URL")
NEEDS_POSTGRES = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="PostgreSQL not configured: set WUYE_TEST_POSTGRES_URL="
           "postgresql+asyncpg://postgres@127.0.0.1:5432/test (as .ci/run does) to run these tests",
)


async def _admin(sql: str) -> None:
    import asyncpg

    url = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username,
                                 password=url.password, database=url.database)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A database of this test session's own on the configured PostgreSQL server."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set WUYE_TEST_POSTGRES_URL to run these tests")
    name = f"wuye_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=NEEDS_POSTGRES)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'wuye.db'}"
    return request.getfixturevalue("postgres_database_url")


def _truncate_sql() -> str:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    return f"TRUNCATE {tables} RESTART IDENTITY CASCADE"


@pytest.fixture
def clock() -> ManualClock:
    # A Wednesday at 10:00 in working time, far from holidays: deadlines are easy to read.
    return ManualClock(datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, bot_token=None, policy_file=None, routing_file=None,
                    rules_file=None, _env_file=None)


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[App]:
    """The application on a clean, migrated database."""
    application = await build_app(settings, clock=clock)
    if application.engine.dialect.name == "postgresql":
        async with application.engine.begin() as conn:
            await conn.execute(text(_truncate_sql()))
    try:
        yield application
    finally:
        await application.close()


# ---- end to end: the real aiogram client polling the project's Bot API emulator ---------------
from aiogram import Bot  # noqa: E402
from aiogram.client.default import DefaultBotProperties  # noqa: E402

from bot.dispatcher import build_dispatcher, configure_bot  # noqa: E402
from emulator import BotAPIEmulator  # noqa: E402
from emulator.testing import bot_emulator, run_polling  # noqa: E402,F401


@pytest.fixture(scope="session")
def classifier():  # type: ignore[no-untyped-def]
    """jieba's dictionary loads once per test session."""
    from intents.classifier import Classifier

    return Classifier.load()


class Desk:
    """The bot as residents and staff meet it: app + dispatcher polling the emulator."""

    def __init__(self, emu: BotAPIEmulator, app: App, bot: Bot, classifier: object) -> None:
        self.emu, self.app, self.bot, self.classifier = emu, app, bot, classifier

    def user(self, user_id: int, first_name: str = "业主"):  # type: ignore[no-untyped-def]
        return self.emu.user(user_id, first_name=first_name)

    dp = None  # the dispatcher polling now
    polling = None  # its task

    @contextlib.asynccontextmanager
    async def restart(self):  # type: ignore[no-untyped-def]
        """Stop polling and start a new dispatcher on the same database (a process restart).

        ``async with desk.restart(): ...`` in a test: the new dispatcher polls until the block ends.
        """
        if self.dp is not None and self.polling is not None and not self.polling.done():
            await self.dp.stop_polling()  # returns once the old polling loop has ended
        self.dp = build_dispatcher(self.app, self.classifier)
        # The bot's session is shared with the background runtime: polling must not close it.
        async with run_polling(self.dp, self.bot, self.emu, close_bot_session=False) as task:
            self.polling = task
            yield task

    async def tick(self) -> int:
        """What the scheduler does every few seconds: fire due timers (the clock is the test's)."""
        return await self.background.fire_timers()

    async def staff(self, telegram_id: int, name: str, role: str):  # type: ignore[no-untyped-def]
        """A staff member on the roster who has pressed /start."""
        member = await self.app.roster.add_staff(telegram_id=telegram_id, name=name, role=role)
        user = self.emu.user(telegram_id, first_name=name)
        await user.start()
        await user.wait_for(lambda m: "您好" in m.text)
        return member, user


@pytest.fixture
async def desk(app: App, bot_emulator: BotAPIEmulator, classifier: object) -> AsyncIterator[Desk]:  # noqa: F811
    from notifier.runtime import Background

    bot = configure_bot(bot_emulator.make_bot(default=DefaultBotProperties(parse_mode="HTML")))
    d = Desk(bot_emulator, app, bot, classifier)
    # Timers fire when a test calls desk.tick(); the outbox is delivered continuously.
    d.background = Background(app, bot, timer_interval=3600, outbox_idle=0.05)
    try:
        async with d.restart():
            await d.background.start()
            try:
                yield d
            finally:
                await d.background.stop()
    finally:
        await bot.session.close()
