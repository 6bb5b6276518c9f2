"""Repositories: the domain's ``add``/``get`` on top of SQLAlchemy rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from complaints.calendar import Override
from complaints.model import (
    OPEN_STATUSES,
    ActorKind,
    Attachment,
    Channel,
    Complaint,
    ComplaintEvent,
    ConcurrentUpdate,
    Contact,
    Emotion,
    EventKind,
    Location,
    Role,
    Status,
    Urgency,
)
from complaints.people import Resident, Staff
from complaints.routing import StaffCandidate
from storage.tables import (
    AttachmentRow,
    CalendarOverrideRow,
    ComplaintEventRow,
    ComplaintRow,
    FSMStateRow,
    NumberSequenceRow,
    OutboxRow,
    ResidentRow,
    StaffInviteRow,
    StaffRow,
    TimerRow,
)


def _insert(session: AsyncSession, table: Any, values: dict[str, Any]) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(**values)


def _upsert_ignore(session: AsyncSession, table: Any, values: dict[str, Any]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect."""
    return _insert(session, table, values).on_conflict_do_nothing()


def upsert(session: AsyncSession, table: Any, values: dict[str, Any], *, index_elements: list[str],
           update: list[str]) -> Any:
    """INSERT … ON CONFLICT (key) DO UPDATE: one statement, no read-then-write race."""
    stmt = _insert(session, table, values)
    return stmt.on_conflict_do_update(index_elements=index_elements,
                                      set_={name: stmt.excluded[name] for name in update})


class SqlComplaintRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # Rows loaded in this unit of work, so add() updates instead of inserting twice.
        self._rows: dict[str, ComplaintRow] = {}
        self._saved_events: dict[str, int] = {}
        self._saved_attachments: dict[str, int] = {}

    async def next_sequence(self, day: date) -> int:
        key = f"{day:%Y%m%d}"
        await self.session.execute(_upsert_ignore(self.session, NumberSequenceRow, {"day": key, "last": 0}))
        # The UPDATE takes the row lock, so concurrent processes get distinct numbers.
        result = await self.session.execute(
            update(NumberSequenceRow).where(NumberSequenceRow.day == key)
            .values(last=NumberSequenceRow.last + 1).returning(NumberSequenceRow.last))
        return int(result.scalar_one())

    async def add(self, complaint: Complaint) -> None:
        row = self._rows.get(complaint.number)
        if row is None:
            row = ComplaintRow(number=complaint.number)
            self.session.add(row)
            self._rows[complaint.number] = row
            self._saved_events[complaint.number] = 0
            self._saved_attachments[complaint.number] = 0
            _fill_row(row, complaint)
        else:
            _fill_row(row, complaint)
            # Every save of a loaded complaint bumps and checks the version, even one that only
            # appends events (a note, a contact reveal): otherwise two stale copies would both get
            # past the row and collide on the event sequence with an opaque IntegrityError.
            flag_modified(row, "status")
        try:
            await self.session.flush()
        except StaleDataError as exc:
            raise ConcurrentUpdate() from exc
        complaint.id = row.id
        saved = self._saved_events[complaint.number]
        new_events = complaint.history[saved:]
        if new_events:
            await self.session.execute(insert(ComplaintEventRow), [
                _event_values(row.id, saved + i + 1, e) for i, e in enumerate(new_events)])
            self._saved_events[complaint.number] = len(complaint.history)
        saved_att = self._saved_attachments[complaint.number]
        new_attachments = complaint.attachments[saved_att:]
        if new_attachments:
            await self.session.execute(insert(AttachmentRow), [
                {"complaint_id": row.id, "seq": saved_att + i + 1, "kind": a.kind, "file_id": a.file_id,
                 "caption": a.caption} for i, a in enumerate(new_attachments)])
            self._saved_attachments[complaint.number] = len(complaint.attachments)

    async def get(self, number: str, *, for_update: bool = False) -> Complaint | None:
        stmt = select(ComplaintRow).where(ComplaintRow.number == number)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        if row is None:
            return None
        return (await self._load([row]))[0]

    async def get_by_id(self, complaint_id: int, *, for_update: bool = False) -> Complaint | None:
        stmt = select(ComplaintRow).where(ComplaintRow.id == complaint_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        return (await self._load([row]))[0] if row is not None else None

    async def list(
        self,
        *,
        statuses: Sequence[Status] | None = None,
        resident_id: int | None = None,
        assignee_id: int | None = None,
        overdue_at: datetime | None = None,
        limit: int | None = None,
    ) -> list[Complaint]:
        stmt = select(ComplaintRow)
        if statuses:
            stmt = stmt.where(ComplaintRow.status.in_([str(s) for s in statuses]))
        if resident_id is not None:
            stmt = stmt.where(ComplaintRow.resident_id == resident_id)
        if assignee_id is not None:
            stmt = stmt.where(ComplaintRow.assignee_id == assignee_id)
        if overdue_at is not None:
            stmt = stmt.where(ComplaintRow.status.in_([str(s) for s in OPEN_STATUSES]),
                              ComplaintRow.resolve_by < overdue_at)
            stmt = stmt.order_by(ComplaintRow.resolve_by)
        elif resident_id is not None:
            stmt = stmt.order_by(ComplaintRow.created_at.desc())
        else:
            stmt = stmt.order_by(ComplaintRow.resolve_by)
        if limit is not None:
            stmt = stmt.limit(limit)
        rows = list((await self.session.execute(stmt)).scalars())
        return await self._load(rows)

    async def erase_personal(self, complaint_id: int) -> None:
        """After ``Complaint.anonymise``: drop the stored photos' file ids and the resident's own
        words in the history (补充信息, 回访 comments). The events themselves stay for statistics."""
        await self.session.execute(delete(AttachmentRow).where(AttachmentRow.complaint_id == complaint_id))
        await self.session.execute(
            update(ComplaintEventRow)
            .where(ComplaintEventRow.complaint_id == complaint_id,
                   ComplaintEventRow.actor_kind == str(ActorKind.RESIDENT))
            .values(note=None))

    async def count_recent(self, resident_id: int, category: str, since: datetime) -> int:
        stmt = select(func.count()).select_from(ComplaintRow).where(
            ComplaintRow.resident_id == resident_id, ComplaintRow.category == category,
            ComplaintRow.created_at >= since)
        return int((await self.session.execute(stmt)).scalar_one())

    async def _load(self, rows: list[ComplaintRow]) -> list[Complaint]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        events: dict[int, list[ComplaintEvent]] = {i: [] for i in ids}
        for ev in (await self.session.execute(
                select(ComplaintEventRow).where(ComplaintEventRow.complaint_id.in_(ids))
                .order_by(ComplaintEventRow.complaint_id, ComplaintEventRow.seq))).scalars():
            events[ev.complaint_id].append(_event_from_row(ev))
        attachments: dict[int, list[Attachment]] = {i: [] for i in ids}
        for att in (await self.session.execute(
                select(AttachmentRow).where(AttachmentRow.complaint_id.in_(ids))
                .order_by(AttachmentRow.complaint_id, AttachmentRow.seq))).scalars():
            attachments[att.complaint_id].append(Attachment(att.kind, att.file_id, att.caption))
        result = []
        for row in rows:
            complaint = _complaint_from_row(row, events[row.id], attachments[row.id])
            self._rows[row.number] = row
            self._saved_events[row.number] = len(complaint.history)
            self._saved_attachments[row.number] = len(complaint.attachments)
            result.append(complaint)
        return result


def _fill_row(row: ComplaintRow, c: Complaint) -> None:
    row.resident_id = c.resident_id
    row.text = c.text
    row.category = c.category
    row.secondary = list(c.secondary)
    row.urgency = str(c.urgency)
    row.emotion = str(c.emotion)
    row.channel = str(c.channel)
    row.status = str(c.status)
    row.assignee_id = c.assignee_id
    row.contact_name = c.contact.name
    row.contact_phone = c.contact.phone
    row.anonymous = c.anonymous
    row.loc_building = c.location.building
    row.loc_unit = c.location.unit
    row.loc_room = c.location.room
    row.loc_area = c.location.area
    row.loc_text = c.location.text
    row.is_repeat = c.is_repeat
    row.created_at = c.created_at
    row.accept_by = c.accept_by
    row.resolve_by = c.resolve_by
    row.accepted_at = c.accepted_at
    row.resolved_at = c.resolved_at
    row.closed_at = c.closed_at
    row.escalation_level = c.escalation_level
    row.satisfied = c.satisfied
    row.rating = c.rating
    row.resolution = c.resolution
    row.external_referral = c.external_referral


def _complaint_from_row(row: ComplaintRow, history: list[ComplaintEvent],
                        attachments: list[Attachment]) -> Complaint:
    return Complaint(
        id=row.id, number=row.number, text=row.text, category=row.category,
        urgency=Urgency(row.urgency), channel=Channel(row.channel), created_at=row.created_at,
        accept_by=row.accept_by, resolve_by=row.resolve_by, resident_id=row.resident_id,
        contact=Contact(row.contact_name, row.contact_phone), anonymous=row.anonymous,
        location=Location(row.loc_building, row.loc_unit, row.loc_room, row.loc_area, row.loc_text),
        emotion=Emotion(row.emotion), secondary=tuple(row.secondary or ()), attachments=attachments,
        is_repeat=row.is_repeat, status=Status(row.status), assignee_id=row.assignee_id,
        accepted_at=row.accepted_at, resolved_at=row.resolved_at, closed_at=row.closed_at,
        escalation_level=row.escalation_level, satisfied=row.satisfied, rating=row.rating,
        resolution=row.resolution, external_referral=row.external_referral, history=history,
    )


def _event_values(complaint_id: int, seq: int, e: ComplaintEvent) -> dict[str, Any]:
    return {
        "complaint_id": complaint_id, "seq": seq, "kind": str(e.kind), "at": e.at,
        "actor_kind": str(e.actor_kind), "actor_id": e.actor_id, "actor_role": e.actor_role,
        "from_status": str(e.from_status) if e.from_status else None,
        "to_status": str(e.to_status) if e.to_status else None, "note": e.note, "data": e.data,
    }


def _event_from_row(row: ComplaintEventRow) -> ComplaintEvent:
    return ComplaintEvent(
        kind=EventKind(row.kind), at=row.at, actor_kind=ActorKind(row.actor_kind), actor_id=row.actor_id,
        actor_role=row.actor_role, from_status=Status(row.from_status) if row.from_status else None,
        to_status=Status(row.to_status) if row.to_status else None, note=row.note, data=dict(row.data or {}),
    )


class SqlStaffRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, staff: Staff) -> Staff:
        row = StaffRow(telegram_id=staff.telegram_id, name=staff.name, role=str(staff.role),
                       phone=staff.phone, active=staff.active, reachable=staff.reachable,
                       created_at=staff.created_at)
        self.session.add(row)
        await self.session.flush()
        staff.id = row.id
        return staff

    async def get(self, staff_id: int) -> Staff | None:
        row = await self.session.get(StaffRow, staff_id)
        return _staff(row) if row else None

    async def get_by_telegram_id(self, telegram_id: int) -> Staff | None:
        row = (await self.session.execute(
            select(StaffRow).where(StaffRow.telegram_id == telegram_id))).scalar_one_or_none()
        return _staff(row) if row else None

    async def list(self, *, active_only: bool = False, role: Role | None = None) -> list[Staff]:
        stmt = select(StaffRow).order_by(StaffRow.id)
        if active_only:
            stmt = stmt.where(StaffRow.active.is_(True))
        if role is not None:
            stmt = stmt.where(StaffRow.role == str(role))
        return [_staff(r) for r in (await self.session.execute(stmt)).scalars()]

    async def save(self, staff: Staff) -> None:
        await self.session.execute(update(StaffRow).where(StaffRow.id == staff.id).values(
            name=staff.name, role=str(staff.role), phone=staff.phone, active=staff.active,
            reachable=staff.reachable))

    async def candidates(self) -> list[StaffCandidate]:
        load = (select(ComplaintRow.assignee_id, func.count().label("n"))
                .where(ComplaintRow.status.in_([str(s) for s in OPEN_STATUSES]))
                .group_by(ComplaintRow.assignee_id).subquery())
        stmt = (select(StaffRow, func.coalesce(load.c.n, 0))
                .outerjoin(load, load.c.assignee_id == StaffRow.id)
                .where(StaffRow.active.is_(True)))
        return [StaffCandidate(id=row.id, role=Role(row.role), open_load=int(n), active=row.active,
                               reachable=row.reachable)
                for row, n in (await self.session.execute(stmt)).all()]


def _staff(row: StaffRow) -> Staff:
    return Staff(id=row.id, telegram_id=row.telegram_id, name=row.name, role=Role(row.role), phone=row.phone,
                 active=row.active, reachable=row.reachable, created_at=row.created_at)


class SqlResidentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, resident_id: int) -> Resident | None:
        row = await self.session.get(ResidentRow, resident_id)
        return _resident(row) if row else None

    async def get_by_telegram_id(self, telegram_id: int) -> Resident | None:
        row = (await self.session.execute(
            select(ResidentRow).where(ResidentRow.telegram_id == telegram_id))).scalar_one_or_none()
        return _resident(row) if row else None

    async def get_by_phone(self, phone: str) -> Resident | None:
        row = (await self.session.execute(
            select(ResidentRow).where(ResidentRow.phone == phone).order_by(ResidentRow.id).limit(1)
        )).scalar_one_or_none()
        return _resident(row) if row else None

    async def add(self, resident: Resident) -> Resident:
        row = ResidentRow(telegram_id=resident.telegram_id, name=resident.name, phone=resident.phone,
                          prefers_anonymous=resident.prefers_anonymous, created_at=resident.created_at)
        self.session.add(row)
        await self.session.flush()
        resident.id = row.id
        return resident

    async def save(self, resident: Resident) -> None:
        await self.session.execute(update(ResidentRow).where(ResidentRow.id == resident.id).values(
            name=resident.name, phone=resident.phone, prefers_anonymous=resident.prefers_anonymous))

    async def forget(self, resident: Resident, at: datetime) -> None:
        """个人信息删除: name, phone and the Telegram link go; the row stays as an anonymous
        tombstone (``forgotten_at``). The person's dialog state goes with them."""
        await self.session.execute(update(ResidentRow).where(ResidentRow.id == resident.id).values(
            name=None, phone=None, telegram_id=None, prefers_anonymous=False, forgotten_at=at))
        if resident.telegram_id is not None:
            # FSM keys are bot:chat:user:…; a private chat's id is the user's id.
            tid = resident.telegram_id
            await self.session.execute(delete(FSMStateRow).where(FSMStateRow.key.like(f"%:{tid}:{tid}:%")))


def _resident(row: ResidentRow) -> Resident:
    return Resident(id=row.id, telegram_id=row.telegram_id, name=row.name, phone=row.phone,
                    prefers_anonymous=row.prefers_anonymous, created_at=row.created_at)


class SqlCalendarRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def overrides(self) -> dict[date, Override]:
        rows = (await self.session.execute(select(CalendarOverrideRow))).scalars()
        return {r.day: Override(r.is_workday, r.note) for r in rows}

    async def set(self, day: date, is_workday: bool, note: str | None, at: datetime) -> None:
        row = await self.session.get(CalendarOverrideRow, day)
        if row is None:
            self.session.add(CalendarOverrideRow(day=day, is_workday=is_workday, note=note, updated_at=at))
        else:
            row.is_workday, row.note, row.updated_at = is_workday, note, at
        await self.session.flush()


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, chat_id: int, payload: dict[str, Any], *, at: datetime,
                  method: str = "sendMessage", dedup_key: str | None = None) -> None:
        values = {"chat_id": chat_id, "method": method, "payload": payload, "status": "pending",
                  "attempts": 0, "not_before": at, "created_at": at, "dedup_key": dedup_key}
        if dedup_key is None:
            await self.session.execute(insert(OutboxRow).values(**values))
        else:
            await self.session.execute(_upsert_ignore(self.session, OutboxRow, values))

    async def drop_chat(self, chat_id: int) -> int:
        """Everything queued for (or kept from) a chat whose person asked to be forgotten."""
        result = await self.session.execute(delete(OutboxRow).where(OutboxRow.chat_id == chat_id))
        return result.rowcount or 0


@dataclass(frozen=True)
class DueTimer:
    id: int
    kind: str
    complaint_id: int | None
    due_at: datetime
    data: dict[str, Any]
    key: str


class SqlTimerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def schedule(self, kind: str, due_at: datetime, key: str, *, at: datetime,
                       complaint_id: int | None = None, data: dict[str, Any] | None = None) -> None:
        await self.session.execute(_upsert_ignore(self.session, TimerRow, {
            "kind": kind, "complaint_id": complaint_id, "due_at": due_at, "done_at": None, "created_at": at,
            "data": data or {}, "dedup_key": key}))

    async def claim_due(self, now: datetime, limit: int = 1) -> list[DueTimer]:
        """Due timers, locked for this transaction; other processes skip them (PostgreSQL)."""
        stmt = (select(TimerRow).where(TimerRow.done_at.is_(None), TimerRow.due_at <= now)
                .order_by(TimerRow.due_at, TimerRow.id).limit(limit).with_for_update(skip_locked=True))
        rows = (await self.session.execute(stmt)).scalars().all()
        return [DueTimer(r.id, r.kind, r.complaint_id, r.due_at, dict(r.data or {}), r.dedup_key) for r in rows]

    async def mark_done(self, timer_id: int, at: datetime) -> bool:
        """False when another process finished it first (SQLite's stand-in for SKIP LOCKED)."""
        result = await self.session.execute(
            update(TimerRow).where(TimerRow.id == timer_id, TimerRow.done_at.is_(None)).values(done_at=at))
        return result.rowcount == 1

    async def pending(self, complaint_id: int | None = None) -> list[DueTimer]:
        stmt = select(TimerRow).where(TimerRow.done_at.is_(None)).order_by(TimerRow.due_at)
        if complaint_id is not None:
            stmt = stmt.where(TimerRow.complaint_id == complaint_id)
        rows = (await self.session.execute(stmt)).scalars().all()
        return [DueTimer(r.id, r.kind, r.complaint_id, r.due_at, dict(r.data or {}), r.dedup_key) for r in rows]

    async def next_due(self) -> datetime | None:
        return (await self.session.execute(
            select(func.min(TimerRow.due_at)).where(TimerRow.done_at.is_(None)))).scalar_one_or_none()


@dataclass(frozen=True)
class Invite:
    code: str
    role: str
    name: str | None
    expires_at: datetime
    used_at: datetime | None


class SqlInviteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, code: str, role: str, *, name: str | None, at: datetime, expires_at: datetime) -> None:
        self.session.add(StaffInviteRow(code=code, role=role, name=name, created_at=at, expires_at=expires_at))
        await self.session.flush()

    async def get(self, code: str, *, for_update: bool = False) -> Invite | None:
        stmt = select(StaffInviteRow).where(StaffInviteRow.code == code)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        return Invite(row.code, row.role, row.name, row.expires_at, row.used_at) if row else None

    async def use(self, code: str, telegram_id: int, at: datetime) -> None:
        await self.session.execute(update(StaffInviteRow).where(StaffInviteRow.code == code)
                                   .values(used_at=at, used_by=telegram_id))
