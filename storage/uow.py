"""The SQLAlchemy unit of work: one session, one transaction, the repositories on top of it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from complaints.model import ConcurrentUpdate
from storage.repositories import (
    SqlCalendarRepository,
    SqlComplaintRepository,
    SqlInviteRepository,
    SqlOutbox,
    SqlResidentRepository,
    SqlStaffRepository,
    SqlTimerRepository,
)


class SqlUnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self.complaints = SqlComplaintRepository(self.session)
        self.staff = SqlStaffRepository(self.session)
        self.residents = SqlResidentRepository(self.session)
        self.calendar = SqlCalendarRepository(self.session)
        self.outbox = SqlOutbox(self.session)
        self.timers = SqlTimerRepository(self.session)
        self.invites = SqlInviteRepository(self.session)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self.session is not None
        try:
            # Anything not committed explicitly is thrown away: half a change is never kept.
            await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        assert self.session is not None
        try:
            await self.session.commit()
        except StaleDataError as exc:  # a version check in the final flush: someone wrote first
            raise ConcurrentUpdate() from exc

    async def rollback(self) -> None:
        assert self.session is not None
        await self.session.rollback()
