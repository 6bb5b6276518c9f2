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
from datetime import datetime

from aiogram import Bot
from sqlalchemy import and_, update

from bot.container import App
from complaints.model import ROLE_LABELS, Role
from complaints.people import Staff
from complaints.timers import TimerKind
from notifier.outbox import OutboxWorker
from notifier.ratelimit import RateLimits
from storage.tables import TimerRow

logger = logging.getLogger(__name__)


# Loggers that print SQL parameters (residents' phones among them) at DEBUG/INFO: a debug log
# level for the bot must not turn the log into a copy of personal data.
SQL_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool")


def quiet_sql_logs() -> None:
    for name in SQL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


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
                 worker_id: str | None = None, limits: RateLimits | None = None) -> None:
        self.app = app
        self.bot = bot
        self.timer_interval = timer_interval
        self.calendar_interval = calendar_interval
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.outbox = OutboxWorker(app.sessions, bot, app.clock, worker_id=self.worker_id,
                                   on_unreachable=self._unreachable, idle_interval=outbox_idle,
                                   limits=limits or RateLimits())
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _unreachable(self, chat_id: int) -> None:
        """Telegram refused a message (403): if it was a staff member, move their work and tell
        the supervisors, so nobody waits on a person the bot cannot reach."""
        staff = await self.app.roster.staff_by_telegram(chat_id)
        was_reachable = staff is not None and staff.reachable
        moved = await self.app.complaints.staff_unreachable(chat_id)
        if moved:
            logger.warning("staff %s unreachable; moved %s", chat_id, ", ".join(moved))
        if staff is not None and was_reachable and not moved:
            # Moved work already told the supervisors (same transaction, per complaint); otherwise
            # they still need to know this person cannot be reached.
            await self._tell_supervisors_unreachable(staff)
        self.outbox.notify()

    async def _tell_supervisors_unreachable(self, staff: Staff) -> None:
        from dialogs.texts import q
        from notifier.events import message_payload

        name, role, tid = staff.name, staff.role, staff.telegram_id
        text = (f"⚠️ 员工 {q(name)}({ROLE_LABELS[Role(role)]})无法通过 Telegram 联系"
                "(尚未启动机器人或已屏蔽),暂时不会给其分派投诉。请提醒其打开机器人并发送 /start。")
        now = self.app.clock()
        async with self.app.uow() as uow:
            people = [s for s in await uow.staff.list(active_only=True, role=Role.SUPERVISOR) if s.reachable]
            if not people:
                people = [s for s in await uow.staff.list(active_only=True, role=Role.MANAGER) if s.reachable]
            for person in people:
                if person.telegram_id == tid:
                    continue
                await uow.outbox.add(person.telegram_id, message_payload(text), at=now,
                                     dedup_key=f"unreachable:{tid}:{now:%Y%m%d%H%M}:{person.telegram_id}")
            await uow.commit()

    async def start(self) -> None:
        quiet_sql_logs()
        self._stop.clear()
        await self.plan_daily_summary()
        self._tasks = [
            asyncio.create_task(self.outbox.run(self._stop), name="outbox"),
            asyncio.create_task(self._every(self.timer_interval, self.fire_timers), name="timers"),
            asyncio.create_task(self._every(self.calendar_interval, self.app.reload_calendar), name="calendar"),
        ]

    async def plan_daily_summary(self) -> datetime:
        """The next summary at the configured time. A changed WUYE_DAILY_SUMMARY_TIME also moves a
        summary planned under the old one: each summary plans the next from its own time of day,
        so otherwise the old time would stay for ever (and a plan for another day would send two)."""
        due = await self.app.complaints.schedule_daily_summary(_daily_time(self.app.settings.daily_summary_time))
        key = f"{TimerKind.DAILY_SUMMARY}:{due:%Y-%m-%d}"
        now = self.app.clock()
        pending = and_(TimerRow.kind == str(TimerKind.DAILY_SUMMARY), TimerRow.done_at.is_(None))
        async with self.app.sessions() as session, session.begin():
            await session.execute(update(TimerRow).where(pending, TimerRow.dedup_key == key).values(due_at=due))
            await session.execute(update(TimerRow).where(pending, TimerRow.dedup_key != key).values(done_at=now))
        return due

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
