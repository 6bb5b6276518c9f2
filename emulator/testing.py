"""Reusable pytest helpers for bot tests against the emulator.

Import the fixtures into a conftest (``from emulator.testing import bot_emulator, emulated_bot``)
and drive a Dispatcher with :func:`run_polling`::

    async def test_hello(bot_emulator, emulated_bot):
        dp = Dispatcher()
        dp.include_router(router)
        async with run_polling(dp, emulated_bot, bot_emulator):
            user = bot_emulator.user(1001, first_name="张三")
            await user.start()
            assert "欢迎" in (await user.wait_for_message()).text
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest_asyncio
from aiogram.utils.backoff import BackoffConfig

from .server import BotAPIEmulator

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

# aiogram's default backoff starts at 1 s; tests that inject getUpdates failures want it quicker.
FAST_BACKOFF = BackoffConfig(min_delay=0.05, max_delay=0.2, factor=1.5, jitter=0.0)


class FakeClock:
    """Injectable clock (``BotAPIEmulator(clock=FakeClock(...))``): time moves only when told."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.asynccontextmanager
async def run_polling(
    dp: Dispatcher,
    bot: Bot,
    emulator: BotAPIEmulator | None = None,
    *,
    polling_timeout: int = 10,
    backoff_config: BackoffConfig = FAST_BACKOFF,
    **kwargs: Any,
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``dp.start_polling(bot)`` in a task for the duration of the block.

    With ``emulator`` given, the block starts only once the first getUpdates has arrived, so the
    bot is really listening. Exceptions from the polling task are re-raised on exit.
    """
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=polling_timeout,
                         backoff_config=backoff_config, **kwargs)
    )
    try:
        if emulator is not None:
            waiter = asyncio.create_task(emulator.wait_polling(bot.token, timeout=5.0))
            done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                waiter.cancel()
                task.result()  # polling died during startup: surface why
            await waiter
        yield task
    finally:
        if not task.done():
            with contextlib.suppress(RuntimeError):  # "Polling is not started" if it never got going
                await dp.stop_polling()
            await asyncio.wait_for(task, 5.0)
        elif not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


@pytest_asyncio.fixture
async def bot_emulator() -> AsyncIterator[BotAPIEmulator]:
    """A started emulator on 127.0.0.1 with one bot (token ``emulator.DEFAULT_TOKEN``)."""
    async with BotAPIEmulator() as emu:
        yield emu


@pytest_asyncio.fixture
async def emulated_bot(bot_emulator: BotAPIEmulator) -> AsyncIterator[Bot]:
    """An aiogram Bot talking to ``bot_emulator``; its session is closed afterwards."""
    bot = bot_emulator.make_bot()
    try:
        yield bot
    finally:
        await bot.session.close()
