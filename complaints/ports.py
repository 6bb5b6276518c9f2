"""What the service layer needs from storage, as protocols: the domain never imports the ORM."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from complaints.calendar import Override
from complaints.model import Complaint, Role, Status
from complaints.people import Resident, Staff
from complaints.routing import StaffCandidate


class ComplaintRepository(Protocol):
    async def add(self, complaint: Complaint) -> None: ...

    async def get(self, number: str, *, for_update: bool = False) -> Complaint | None: ...

    async def get_by_id(self, complaint_id: int, *, for_update: bool = False) -> Complaint | None: ...

    async def list(
        self,
        *,
        statuses: Sequence[Status] | None = None,
        resident_id: int | None = None,
        assignee_id: int | None = None,
        overdue_at: datetime | None = None,
        limit: int | None = None,
    ) -> list[Complaint]: ...

    async def count_recent(self, resident_id: int, category: str, since: datetime) -> int: ...

    async def erase_personal(self, complaint_id: int) -> None: ...

    async def next_sequence(self, day: date) -> int: ...


class StaffRepository(Protocol):
    async def add(self, staff: Staff) -> Staff: ...

    async def get(self, staff_id: int) -> Staff | None: ...

    async def get_by_telegram_id(self, telegram_id: int) -> Staff | None: ...

    async def list(self, *, active_only: bool = False, role: Role | None = None) -> list[Staff]: ...

    async def save(self, staff: Staff) -> None: ...

    async def candidates(self) -> list[StaffCandidate]: ...


class ResidentRepository(Protocol):
    async def get(self, resident_id: int) -> Resident | None: ...

    async def get_by_telegram_id(self, telegram_id: int) -> Resident | None: ...

    async def get_by_phone(self, phone: str) -> Resident | None: ...

    async def add(self, resident: Resident) -> Resident: ...

    async def save(self, resident: Resident) -> None: ...

    async def forget(self, resident: Resident, at: datetime) -> None: ...


class CalendarRepository(Protocol):
    async def overrides(self) -> dict[date, Override]: ...

    async def set(self, day: date, is_workday: bool, note: str | None, at: datetime) -> None: ...


class Outbox(Protocol):
    async def add(self, chat_id: int, payload: dict[str, Any], *, at: datetime,
                  method: str = "sendMessage", dedup_key: str | None = None) -> None: ...

    async def drop_chat(self, chat_id: int) -> int: ...


class DueTimer(Protocol):
    id: int
    kind: str
    complaint_id: int | None
    due_at: datetime
    data: dict[str, Any]
    key: str


class TimerRepository(Protocol):
    async def schedule(self, kind: str, due_at: datetime, key: str, *, at: datetime,
                       complaint_id: int | None = None, data: dict[str, Any] | None = None) -> None: ...

    async def claim_due(self, now: datetime, limit: int = 1) -> Sequence[DueTimer]: ...

    async def mark_done(self, timer_id: int, at: datetime) -> bool: ...


class Invite(Protocol):
    code: str
    role: str
    name: str | None
    expires_at: datetime
    used_at: datetime | None


class InviteRepository(Protocol):
    async def add(self, code: str, role: str, *, name: str | None, at: datetime, expires_at: datetime) -> None: ...

    async def get(self, code: str, *, for_update: bool = False) -> Invite | None: ...

    async def use(self, code: str, telegram_id: int, at: datetime) -> None: ...


class UnitOfWork(Protocol):
    """The only place a transaction begins and ends: ``async with uow: …; await uow.commit()``."""

    complaints: ComplaintRepository
    staff: StaffRepository
    residents: ResidentRepository
    calendar: CalendarRepository
    outbox: Outbox
    timers: TimerRepository
    invites: InviteRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...
