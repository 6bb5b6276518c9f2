"""Wiring: builds the engine, calendar, policy and services from the settings, once."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.settings import Settings
from complaints.calendar import WorkCalendar
from complaints.clock import SystemClock
from complaints.deadlines import DeadlinePolicy
from complaints.routing import RoutingTable
from complaints.services import ComplaintService, EventSink, RosterService
from storage import db
from storage.uow import SqlUnitOfWork


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    calendar: WorkCalendar
    policy: DeadlinePolicy
    routing: RoutingTable
    clock: Callable[[], datetime]
    complaints: ComplaintService
    roster: RosterService

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions)

    async def reload_calendar(self) -> None:
        """Pick up administrators' calendar overrides (``wuye calendar set`` in another process)."""
        async with self.uow() as uow:
            overrides = await uow.calendar.overrides()
        self.calendar = self.calendar.with_overrides(overrides)
        self.policy = self.policy.with_calendar(self.calendar)
        self.complaints.policy = self.policy
        if hasattr(self.complaints.sink, "policy"):
            self.complaints.sink.policy = self.policy  # type: ignore[union-attr]

    async def close(self) -> None:
        await self.engine.dispose()


def load_routing(settings: Settings) -> RoutingTable:
    if settings.routing_file is None:
        return RoutingTable()
    with open(settings.routing_file, "rb") as fh:
        data = tomllib.load(fh)
    return RoutingTable.from_mapping(data.get("routing", data))


async def build_app(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None,
                    sink: EventSink | None = None, upgrade: bool = True) -> App:
    settings = settings or Settings()
    calendar = WorkCalendar()
    policy = (DeadlinePolicy.from_toml(settings.policy_file, calendar) if settings.policy_file
              else DeadlinePolicy(calendar=calendar))
    routing = load_routing(settings)
    clock = clock or SystemClock(policy.tz)
    engine = db.create_engine(settings.database_url)
    try:
        if upgrade:
            await db.upgrade(engine)
        sessions = db.session_factory(engine)
        uow_factory = lambda: SqlUnitOfWork(sessions)  # noqa: E731
        on_daily = None
        if sink is None:
            from notifier.events import DailySummaryHook, Notifications

            sink = Notifications(policy)
            on_daily = DailySummaryHook(sink)
        app = App(settings=settings, engine=engine, sessions=sessions, calendar=calendar, policy=policy,
                  routing=routing, clock=clock,
                  complaints=ComplaintService(uow_factory, policy, routing, clock, sink, on_daily),
                  roster=RosterService(uow_factory, clock))
        await app.reload_calendar()
    except BaseException:
        await engine.dispose()
        raise
    return app
