"""The bot's background work: deliver the outbox, fire due timers, keep the calendar fresh.

APScheduler is not needed for this: two loops, each claiming rows in the database, so any
number of bot processes can run them side by side without double-firing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from aiogram import Bot

from bot.container import App
from notifier.outbox import OutboxWorker

logger = logging.getLogger(__name__)


def _daily_time(value: str) -> tuple[int, int]:
    try:
        hour, minute = (int(x) for x in value.split(":"))
        if 0 <= hour < 24 and 0 <= minute < 60:
            return hour, minute
    except ValueError:
        pass
    raise ValueError(f"WUYE_DAILY_SUMMARY_TIME 应为 HH:MM,收到 {value!r}")


class Background:
    def __init__(self, app: App, bot: Bot, *, timer_interval: float = 15.0,
                 calendar_interval: float = 600.0, outbox_idle: float = 1.0,
                 worker_id: str | None = None) -> None:
        self.app = app
        self.bot = bot
        self.timer_interval = timer_interval
        self.calendar_interval = calendar_interval
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.outbox = OutboxWorker(app.sessions, bot, app.clock, worker_id=self.worker_id,
                                   on_unreachable=self._unreachable, idle_interval=outbox_idle)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _unreachable(self, chat_id: int) -> None:
        moved = await self.app.complaints.staff_unreachable(chat_id)
        if moved:
            logger.warning("staff %s unreachable; moved %s", chat_id, ", ".join(moved))
        self.outbox.notify()

    async def start(self) -> None:
        self._stop.clear()
        await self.app.complaints.schedule_daily_summary(_daily_time(self.app.settings.daily_summary_time))
        self._tasks = [
            asyncio.create_task(self.outbox.run(self._stop), name="outbox"),
            asyncio.create_task(self._every(self.timer_interval, self.fire_timers), name="timers"),
            asyncio.create_task(self._every(self.calendar_interval, self.app.reload_calendar), name="calendar"),
        ]

    async def fire_timers(self) -> int:
        fired = await self.app.complaints.fire_due_timers()
        if fired:
            self.outbox.notify()
        return fired

    async def _every(self, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        while not self._stop.is_set():
            try:
                await job()
            except Exception:  # a failed tick (database down, say) is retried next time
                logger.exception("background job %s failed", getattr(job, "__name__", job))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        self._tasks = []
