"""Service layer: the use cases. Each takes plain values, opens one unit of work, asks the domain
to act, lets the event sink queue what must be said (outbox, same transaction) and commits.

Dialogs (Telegram), the command line and the scheduler all call these, so a rule holds the same
whichever way an action arrives.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from complaints.deadlines import DeadlinePolicy
from complaints.model import (
    Actor,
    Attachment,
    Channel,
    Complaint,
    ConcurrentUpdate,
    Contact,
    DomainError,
    Emotion,
    EventKind,
    Location,
    PermissionDenied,
    Role,
    Status,
    Urgency,
    format_number,
)
from complaints.people import Resident, Staff
from complaints.ports import UnitOfWork
from complaints.routing import FALLBACK_ROLES, RoutingTable, choose_assignee, effective_urgency
from complaints.timers import TimerKind, is_current, second_resolve_deadline, stamp

REPEAT_WINDOW = timedelta(days=30)
# Two people acting on one complaint at once: the loser re-reads it and the rules are checked again
# on the fresh state (so "accept" twice gives the second person a clear "already in progress").
MAX_ATTEMPTS = 5
# A 复核 nobody else among the supervisors can take goes up to a manager before the service desk.
REVIEW_FALLBACKS: tuple[Role, ...] = (Role.MANAGER, Role.SERVICE)

T = TypeVar("T")

ACTIONS = ("accept", "resolve", "escalate", "transfer", "close", "withdraw", "reopen", "external")


class NotFound(DomainError):
    pass


class EventSink(Protocol):
    """Turns a complaint's new events into timers and outbox messages, in the same transaction."""

    async def __call__(self, uow: UnitOfWork, complaint: Complaint) -> None: ...


async def _no_sink(uow: UnitOfWork, complaint: Complaint) -> None:
    complaint.pending_events.clear()


DailyHook = Callable[[UnitOfWork, datetime], Awaitable[None]]


@dataclass
class NewComplaint:
    text: str
    category: str
    urgency: Urgency | str
    channel: Channel | str = Channel.TELEGRAM
    emotion: Emotion | str = Emotion.CALM
    secondary: Sequence[str] = ()
    location: Location = field(default_factory=Location)
    contact: Contact = field(default_factory=Contact)
    anonymous: bool = False
    attachments: list[Attachment] = field(default_factory=list)
    resident_id: int | None = None
    # The draft it comes from: a repeated submit (a second tap, an update handled again after a
    # crash) returns the complaint already filed instead of filing it twice.
    intake_key: str | None = None


# How many of a resident's latest complaints are searched for a repeated submit.
INTAKE_LOOKBACK = 5


class ComplaintService:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        policy: DeadlinePolicy,
        routing: RoutingTable | None = None,
        clock: Callable[[], datetime] | None = None,
        sink: EventSink | Callable[[UnitOfWork, Complaint], Awaitable[None]] | None = None,
        on_daily: DailyHook | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.policy = policy
        self.routing = routing or RoutingTable()
        self.clock = clock or (lambda: datetime.now(policy.tz))
        self.sink = sink or _no_sink
        self.on_daily = on_daily

    def now(self) -> datetime:
        return self.clock()

    # ---- intake --------------------------------------------------------------------------------
    async def submit(self, new: NewComplaint, *, by: Actor) -> Complaint:
        now = self.now()
        async with self.uow_factory() as uow:
            if new.intake_key and new.resident_id is not None:
                filed = await self._filed_intake(uow, new.resident_id, new.intake_key)
                if filed is not None:
                    return filed
            is_repeat = False
            if new.resident_id is not None:
                is_repeat = await uow.complaints.count_recent(
                    new.resident_id, new.category, now - REPEAT_WINDOW) > 0
            urgency = effective_urgency(new.urgency, is_repeat=is_repeat)
            deadlines = self.policy.compute(urgency, now)
            local_day = self.policy.to_local(now).date()
            number = format_number(local_day, await uow.complaints.next_sequence(local_day))
            complaint = Complaint.register(
                number=number, text=new.text, category=new.category, urgency=urgency,
                channel=new.channel, at=now, accept_by=deadlines.accept_by,
                resolve_by=deadlines.resolve_by, by=by, resident_id=new.resident_id,
                contact=new.contact, anonymous=new.anonymous, location=new.location,
                emotion=new.emotion, secondary=tuple(new.secondary),
                attachments=list(new.attachments), is_repeat=is_repeat, intake_key=new.intake_key,
            )
            await self._route(uow, complaint, now)
            if complaint.is_angry:
                # 情绪激动: the supervisor hears of it at once, not when a deadline passes.
                complaint.escalate(by=Actor.system(), at=now, reason="angry", note="业主情绪激动")
            await uow.complaints.add(complaint)
            await self.sink(uow, complaint)
            await uow.commit()
        return complaint

    @staticmethod
    async def _filed_intake(uow: UnitOfWork, resident_id: int, intake_key: str) -> Complaint | None:
        for complaint in await uow.complaints.list(resident_id=resident_id, limit=INTAKE_LOOKBACK):
            if complaint.history and complaint.history[0].data.get("intake_key") == intake_key:
                return complaint
        return None

    async def _route(self, uow: UnitOfWork, complaint: Complaint, now: datetime,
                     role: Role | None = None, exclude: Sequence[int] = (),
                     fallbacks: tuple[Role, ...] = FALLBACK_ROLES) -> Staff | None:
        role = role or self.routing.role_for(complaint.category)
        chosen = choose_assignee(await uow.staff.candidates(), role, exclude=exclude, fallbacks=fallbacks)
        if chosen is None:
            return None  # nobody on the roster: stays 受理 for the desk to triage
        complaint.assign(chosen.id, by=Actor.system(), at=now, staff_role=str(chosen.role))
        return await uow.staff.get(chosen.id)

    # ---- reading -------------------------------------------------------------------------------
    async def get(self, number: str) -> Complaint:
        async with self.uow_factory() as uow:
            return await self._get(uow, number)

    async def list(self, *, statuses: Sequence[Status] | None = None, overdue: bool = False,
                   resident_id: int | None = None, assignee_id: int | None = None,
                   limit: int | None = None) -> list[Complaint]:
        async with self.uow_factory() as uow:
            return await uow.complaints.list(
                statuses=statuses, resident_id=resident_id, assignee_id=assignee_id,
                overdue_at=self.now() if overdue else None, limit=limit)

    async def actor_for(self, telegram_id: int) -> Actor:
        """Who a Telegram user is: an active staff member first, else a known resident."""
        async with self.uow_factory() as uow:
            staff = await uow.staff.get_by_telegram_id(telegram_id)
            if staff is not None and staff.active:
                return staff.as_actor()
            resident = await uow.residents.get_by_telegram_id(telegram_id)
            if resident is not None:
                return resident.as_actor()
        raise PermissionDenied(f"未找到 Telegram ID 为 {telegram_id} 的工作人员或业主。")

    # ---- actions -------------------------------------------------------------------------------
    async def act(self, number: str, action: str, *, by: Actor, note: str | None = None,
                  to_staff_id: int | None = None, attachments: list[Attachment] | None = None) -> Complaint:
        """One of :data:`ACTIONS`, with the same rules whether it comes from a button or a shell."""
        if action not in ACTIONS:
            raise DomainError(f"未知操作:{action}。可用操作:{', '.join(ACTIONS)}。")
        now = self.now()
        return await self._retrying(lambda: self._act_once(number, action, by=by, note=note,
                                                           to_staff_id=to_staff_id, now=now,
                                                           attachments=attachments))

    async def _act_once(self, number: str, action: str, *, by: Actor, note: str | None,
                        to_staff_id: int | None, now: datetime,
                        attachments: list[Attachment] | None = None) -> Complaint:
        async with self.uow_factory() as uow:
            complaint = await self._get(uow, number, for_update=True)
            if action == "accept":
                complaint.accept(by=by, at=now)
            elif action == "resolve":
                complaint.resolve(by=by, at=now, note=note, attachments=attachments)
                if complaint.anonymous:
                    # No 回访 for anonymous complaints: nobody to ask.
                    complaint.close(by=Actor.system(), at=now, note="匿名投诉,处理完成后结案")
            elif action == "escalate":
                complaint.escalate(by=by, at=now, note=note)
            elif action == "transfer":
                await self._transfer(uow, complaint, by=by, at=now, note=note, to_staff_id=to_staff_id)
            elif action == "close":
                complaint.close(by=by, at=now, note=note)
            elif action == "withdraw":
                complaint.withdraw(by=by, at=now, note=note)
            elif action == "reopen":
                complaint.reopen(by=by, at=now, note=note)
                await self._route_review(uow, complaint, now)
            elif action == "external":
                complaint.refer_external(by=by, at=now, referral=note or "")
            await uow.complaints.add(complaint)
            await self.sink(uow, complaint)
            await uow.commit()
        return complaint

    async def take(self, number: str, *, by: Actor) -> Complaint:
        """A supervisor takes a complaint over personally (我来处理)."""
        if not by.is_supervisor or by.id is None:
            raise PermissionDenied("只有主管可以直接接手投诉。")
        now = self.now()
        async with self.uow_factory() as uow:
            complaint = await self._get(uow, number, for_update=True)
            if complaint.status is Status.IN_PROGRESS and complaint.assignee_id != by.id:
                complaint.transfer(by.id, by=by, at=now, note="主管接手", staff_role=str(by.role),
                                   accept_by=now)
            if complaint.status in (Status.ASSIGNED, Status.REVIEW, Status.SUBMITTED):
                if complaint.status is Status.SUBMITTED:
                    complaint.assign(by.id, by=by, at=now, staff_role=str(by.role), accept_by=now)
                complaint.accept(by=by, at=now)
            elif complaint.assignee_id != by.id:
                raise DomainError(f"投诉当前状态为「{complaint.status.label}」,无需接手。")
            await uow.complaints.add(complaint)
            await self.sink(uow, complaint)
            await uow.commit()
        return complaint

    async def comment_follow_up(self, number: str, *, by: Actor, comment: str) -> Complaint:
        now = self.now()
        async with self.uow_factory() as uow:
            complaint = await self._get(uow, number, for_update=True)
            complaint.comment_follow_up(comment, by=by, at=now)
            await uow.complaints.add(complaint)
            await self.sink(uow, complaint)
            await uow.commit()
        return complaint

    async def staff_unreachable(self, telegram_id: int) -> list[str]:
        """Telegram refused a message to this staff member (never pressed /start, or blocked us):
        mark them unreachable and move their open work to someone who can be reached."""
        now = self.now()
        moved: list[str] = []
        async with self.uow_factory() as uow:
            staff = await uow.staff.get_by_telegram_id(telegram_id)
            if staff is None or not staff.reachable:
                return moved
            staff.reachable = False
            await uow.staff.save(staff)
            held = await uow.complaints.list(
                statuses=[Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW], assignee_id=staff.id)
            for complaint in held:
                role = Role.SUPERVISOR if complaint.status is Status.REVIEW else self.routing.role_for(complaint.category)
                chosen = choose_assignee(await uow.staff.candidates(), role, exclude=[staff.id])
                if chosen is None:
                    complaint.escalate(by=Actor.system(), at=now, reason="unreachable", to_level=1,
                                       note=f"{staff.name} 无法联系")
                else:
                    if complaint.status is Status.IN_PROGRESS:
                        complaint.accepted_at = None
                    complaint.assign(chosen.id, by=Actor.system(), at=now, staff_role=str(chosen.role),
                                     accept_by=self.policy.compute(complaint.urgency, now).accept_by,
                                     reason="unreachable", note=f"{staff.name} 无法通过 Telegram 联系,自动转派")
                    moved.append(complaint.number)
                await uow.complaints.add(complaint)
                await self.sink(uow, complaint)
            await uow.commit()
        return moved

    async def follow_up(self, number: str, *, by: Actor, solved: bool, rating: int | None = None,
                        comment: str | None = None) -> Complaint:
        now = self.now()

        async def once() -> Complaint:
            async with self.uow_factory() as uow:
                complaint = await self._get(uow, number, for_update=True)
                status = complaint.follow_up(by=by, at=now, solved=solved, rating=rating, comment=comment)
                if status is Status.REVIEW:
                    await self._route_review(uow, complaint, now)
                await uow.complaints.add(complaint)
                await self.sink(uow, complaint)
                await uow.commit()
            return complaint

        return await self._retrying(once)

    async def add_info(self, number: str, *, by: Actor, text: str | None = None,
                       attachments: list[Attachment] | None = None) -> Complaint:
        now = self.now()

        async def once() -> Complaint:
            async with self.uow_factory() as uow:
                complaint = await self._get(uow, number, for_update=True)
                complaint.add_info(by=by, at=now, text=text, attachments=attachments)
                await uow.complaints.add(complaint)
                await self.sink(uow, complaint)
                await uow.commit()
            return complaint

        return await self._retrying(once)

    async def reveal_contact(self, number: str, *, by: Actor) -> str | None:
        now = self.now()

        async def once() -> str | None:
            async with self.uow_factory() as uow:
                complaint = await self._get(uow, number, for_update=True)
                phone = complaint.reveal_contact(by=by, at=now)
                await uow.complaints.add(complaint)
                await uow.commit()
            return phone

        return await self._retrying(once)

    async def delay(self, number: str, *, by: Actor, new_resolve_by: datetime, reason: str) -> Complaint:
        now = self.now()

        async def once() -> Complaint:
            async with self.uow_factory() as uow:
                complaint = await self._get(uow, number, for_update=True)
                complaint.delay(new_resolve_by, by=by, at=now, reason=reason)
                await uow.complaints.add(complaint)
                await self.sink(uow, complaint)
                await uow.commit()
            return complaint

        return await self._retrying(once)

    # ---- personal data (个人信息保护法) ---------------------------------------------------------
    async def export_resident_data(self, telegram_id: int) -> dict[str, Any] | None:
        """Everything stored about a resident, as a JSON-ready document: the profile, each
        complaint with its public history, attachments' file ids and 回访. None: nothing stored."""
        async with self.uow_factory() as uow:
            resident = await uow.residents.get_by_telegram_id(telegram_id)
            if resident is None or resident.id is None:
                return None
            complaints = await uow.complaints.list(resident_id=resident.id)
        return {
            "exported_at": self.now().isoformat(),
            "profile": {"telegram_id": resident.telegram_id, "name": resident.name, "phone": resident.phone,
                        "prefers_anonymous": resident.prefers_anonymous,
                        "created_at": _iso(resident.created_at)},
            "complaints": [_export_complaint(c) for c in complaints],
        }

    async def forget_resident(self, telegram_id: int) -> int | None:
        """Delete a resident's personal data: their complaints are anonymised (statistics keep
        them), name, phone and the Telegram link are dropped, and so are their dialog state and
        every message queued for them. Returns how many complaints were anonymised; None if we
        hold nothing about this person."""
        now = self.now()
        async with self.uow_factory() as uow:
            resident = await uow.residents.get_by_telegram_id(telegram_id)
            if resident is None or resident.id is None:
                return None
            complaints = await uow.complaints.list(resident_id=resident.id)
            for complaint in complaints:
                complaint.anonymise(at=now)
                complaint.pending_events.clear()  # nobody is told: there is no one to tell
                await uow.complaints.add(complaint)
                await uow.complaints.erase_personal(complaint.id)
            await uow.outbox.drop_chat(telegram_id)
            await uow.residents.forget(resident, now)
            await uow.commit()
        return len(complaints)

    # ---- helpers -------------------------------------------------------------------------------
    async def _retrying(self, once: Callable[[], Awaitable[T]]) -> T:
        """Run one unit of work, again on a fresh read if a concurrent writer got there first."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await once()
            except ConcurrentUpdate:
                if attempt == MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get(self, uow: UnitOfWork, number: str, *, for_update: bool = False) -> Complaint:
        complaint = await uow.complaints.get(number.strip().upper(), for_update=for_update)
        if complaint is None:
            raise NotFound(f"没有找到编号为 {number} 的投诉,请核对后再试。")
        return complaint

    async def _transfer(self, uow: UnitOfWork, complaint: Complaint, *, by: Actor, at: datetime,
                        note: str | None, to_staff_id: int | None) -> None:
        if to_staff_id is None:
            exclude = {complaint.assignee_id} if complaint.assignee_id is not None else set()
            role, fallbacks = self.routing.role_for(complaint.category), FALLBACK_ROLES
            if complaint.status is Status.REVIEW:
                # A 复核 passed on stays with the supervisors and never returns to an earlier holder.
                role, fallbacks = Role.SUPERVISOR, REVIEW_FALLBACKS
                exclude |= complaint.handled_by()
            chosen = choose_assignee(await uow.staff.candidates(), role, exclude=exclude,
                                     fallbacks=fallbacks)
            if chosen is None:
                raise DomainError("暂时没有其他可以接手的同事,请联系主管。")
            to_staff_id, to_role = chosen.id, str(chosen.role)
        else:
            target = await uow.staff.get(to_staff_id)
            if target is None or not target.active:
                raise DomainError("要转派的同事不存在或已停用。")
            to_role = str(target.role)
        complaint.transfer(to_staff_id, by=by, at=at, note=note, staff_role=to_role,
                           accept_by=self.policy.compute(complaint.urgency, at).accept_by)

    async def _route_review(self, uow: UnitOfWork, complaint: Complaint, now: datetime) -> None:
        """复核 goes to a supervisor who has not handled the complaint before, with fresh deadlines."""
        deadlines = self.policy.compute(complaint.urgency, now)
        chosen = choose_assignee(await uow.staff.candidates(), Role.SUPERVISOR,
                                 exclude=sorted(complaint.handled_by()), fallbacks=REVIEW_FALLBACKS)
        if chosen is None:
            complaint.resolve_by = deadlines.resolve_by
            return
        complaint.assign(chosen.id, by=Actor.system(), at=now, staff_role=str(chosen.role),
                         accept_by=deadlines.accept_by, resolve_by=deadlines.resolve_by, reason="review")

    # ---- time ----------------------------------------------------------------------------------
    async def fire_due_timers(self, limit: int = 100) -> int:
        """Run what is due: reminders, missed deadlines, automatic closing, the daily summary.

        One timer per transaction, claimed with SKIP LOCKED: several processes share the work and
        none does a timer twice. Returns how many timers fired.
        """
        fired = 0
        for _ in range(limit):
            now = self.now()
            async with self.uow_factory() as uow:
                due = await uow.timers.claim_due(now, 1)
                if not due:
                    break
                timer = due[0]
                if not await uow.timers.mark_done(timer.id, now):
                    continue
                if timer.kind == TimerKind.DAILY_SUMMARY:
                    await self._daily(uow, timer.due_at, now)
                else:
                    await self._fire(uow, TimerKind(timer.kind), timer.complaint_id, timer.data, now)
                await uow.commit()
                fired += 1
        return fired

    async def _fire(self, uow: UnitOfWork, kind: TimerKind, complaint_id: int | None, data: dict,
                    now: datetime) -> None:
        if complaint_id is None:
            return
        complaint = await uow.complaints.get_by_id(complaint_id, for_update=True)
        if complaint is None or not is_current(kind, data, complaint):
            return  # the complaint moved on (accepted, transferred, delayed, closed): nothing to do
        system = Actor.system()
        if kind is TimerKind.ACCEPT_REMIND:
            complaint.record_reminder("accept", at=now, staff_id=complaint.assignee_id)
        elif kind is TimerKind.RESOLVE_REMIND:
            complaint.record_reminder("resolve", at=now, staff_id=complaint.assignee_id)
        elif kind is TimerKind.ACCEPT_DUE:
            await self._accept_missed(uow, complaint, now)
        elif kind is TimerKind.RESOLVE_DUE:
            complaint.escalate(by=system, at=now, reason="resolve_overdue", to_level=1, note="超过处理时限")
            key = f"{TimerKind.RESOLVE_DUE_AGAIN}:{complaint.number}:{stamp(complaint.resolve_by)}"
            await uow.timers.schedule(TimerKind.RESOLVE_DUE_AGAIN, second_resolve_deadline(self.policy, complaint),
                                      key, at=now, complaint_id=complaint.id,
                                      data={"deadline": stamp(complaint.resolve_by)})
        elif kind is TimerKind.RESOLVE_DUE_AGAIN:
            complaint.escalate(by=system, at=now, reason="resolve_overdue_again", to_level=2,
                               note="上移后仍未处理完毕")
        elif kind is TimerKind.FOLLOW_UP_CLOSE:
            complaint.close(by=system, at=now, note="7天未收到回访答复,自动结案")
        await uow.complaints.add(complaint)
        await self.sink(uow, complaint)

    async def _accept_missed(self, uow: UnitOfWork, complaint: Complaint, now: datetime) -> None:
        """Not accepted in time: the next staff member of the role gets it; the supervisor is told."""
        review = complaint.status is Status.REVIEW
        role = Role.SUPERVISOR if review else self.routing.role_for(complaint.category)
        fallbacks = REVIEW_FALLBACKS if review else FALLBACK_ROLES
        missed = complaint.assignee_id
        candidates = await uow.staff.candidates()
        chosen = choose_assignee(candidates, role, exclude=sorted(complaint.handled_by()), fallbacks=fallbacks)
        if chosen is None and missed is not None and not review:
            # Everyone has had it once: start the round again, but not with the one who just missed.
            chosen = choose_assignee(candidates, role, exclude=[missed], fallbacks=fallbacks)
        if chosen is None:
            complaint.escalate(by=Actor.system(), at=now, reason="accept_overdue", to_level=1,
                               note="超时未接单,且无其他可接手人员")
            return
        complaint.assign(chosen.id, by=Actor.system(), at=now, staff_role=str(chosen.role),
                         accept_by=self.policy.compute(complaint.urgency, now).accept_by,
                         reason="accept_overdue", note="超时未接单,自动转派")

    async def _daily(self, uow: UnitOfWork, due_at: datetime, now: datetime) -> None:
        if self.on_daily is not None:
            await self.on_daily(uow, now)
        following = self.policy.to_local(due_at) + timedelta(days=1)
        # A bot that was down for days sends one summary, then resumes the daily rhythm.
        while following <= now:
            following += timedelta(days=1)
        await uow.timers.schedule(TimerKind.DAILY_SUMMARY, following,
                                  f"{TimerKind.DAILY_SUMMARY}:{following:%Y-%m-%d}", at=now)

    async def schedule_daily_summary(self, at_time: tuple[int, int] = (9, 0)) -> datetime:
        """Make sure the next daily summary is planned (idempotent across processes)."""
        now = self.now()
        local = self.policy.to_local(now)
        due = local.replace(hour=at_time[0], minute=at_time[1], second=0, microsecond=0)
        if due <= local:
            due += timedelta(days=1)
        async with self.uow_factory() as uow:
            await uow.timers.schedule(TimerKind.DAILY_SUMMARY, due, f"{TimerKind.DAILY_SUMMARY}:{due:%Y-%m-%d}",
                                      at=now)
            await uow.commit()
        return due


# History notes a resident may read (their own words, delay reasons, results, referrals).
_PUBLIC_NOTES = frozenset({EventKind.INFO_ADDED, EventKind.DELAYED, EventKind.RESOLVED, EventKind.EXTERNAL,
                           EventKind.WITHDRAWN, EventKind.FOLLOW_UP})


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _export_complaint(c: Complaint) -> dict[str, Any]:
    """One complaint as its resident may see it: no staff ids, internal notes or reveals."""
    loc = c.location
    return {
        "number": c.number, "created_at": _iso(c.created_at), "category": c.category,
        "urgency": str(c.urgency), "status": str(c.status), "text": c.text, "anonymous": c.anonymous,
        "location": {"building": loc.building, "unit": loc.unit, "room": loc.room, "area": loc.area,
                     "text": loc.text},
        "contact": {"name": c.contact.name, "phone": c.contact.phone},
        "resolve_by": _iso(c.resolve_by), "resolution": c.resolution, "external_referral": c.external_referral,
        "attachments": [{"kind": a.kind, "file_id": a.file_id, "caption": a.caption} for a in c.attachments],
        "follow_up": {"solved": c.satisfied, "rating": c.rating,
                      "comments": [e.note for e in c.history
                                   if e.kind is EventKind.FOLLOW_UP and e.note and e.data.get("comment")]},
        "history": [{"at": _iso(e.at), "event": str(e.kind), "label": e.label,
                     "status": str(e.to_status) if e.to_status else None,
                     "note": e.note if e.kind in _PUBLIC_NOTES else None}
                    for e in c.public_history()],
    }


class RosterService:
    """The staff roster and residents' own records."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork], clock: Callable[[], datetime]) -> None:
        self.uow_factory = uow_factory
        self.clock = clock

    async def add_staff(self, *, telegram_id: int, name: str, role: Role | str,
                        phone: str | None = None) -> Staff:
        name = name.strip()
        if not name:
            raise DomainError("姓名不能为空。")
        async with self.uow_factory() as uow:
            existing = await uow.staff.get_by_telegram_id(telegram_id)
            if existing is not None:
                if existing.active:
                    raise DomainError(f"Telegram ID {telegram_id} 已经是在职员工({existing.name})。")
                # Re-hiring someone keeps their history: reactivate the same record.
                existing.name, existing.role, existing.phone, existing.active = name, Role(role), phone, True
                await uow.staff.save(existing)
                await uow.commit()
                return existing
            staff = await uow.staff.add(Staff(id=None, telegram_id=telegram_id, name=name, role=Role(role),
                                              phone=phone, created_at=self.clock()))
            await uow.commit()
            return staff

    async def deactivate_staff(self, telegram_id: int) -> Staff:
        async with self.uow_factory() as uow:
            staff = await uow.staff.get_by_telegram_id(telegram_id)
            if staff is None:
                raise NotFound(f"没有 Telegram ID 为 {telegram_id} 的员工。")
            staff.active = False
            await uow.staff.save(staff)
            await uow.commit()
            return staff

    async def staff_by_telegram(self, telegram_id: int) -> Staff | None:
        async with self.uow_factory() as uow:
            staff = await uow.staff.get_by_telegram_id(telegram_id)
        return staff if staff is not None and staff.active else None

    async def person_for_telegram(self, telegram_id: int) -> tuple[Staff | None, Resident | None]:
        """Who a Telegram user is, in one read: their active staff record and their resident
        record, each None when there is none (nothing is created)."""
        async with self.uow_factory() as uow:
            staff = await uow.staff.get_by_telegram_id(telegram_id)
            resident = await uow.residents.get_by_telegram_id(telegram_id)
        return (staff if staff is not None and staff.active else None), resident

    async def mark_reachable(self, telegram_id: int) -> None:
        """The staff member pressed /start (again): messages reach them now."""
        async with self.uow_factory() as uow:
            staff = await uow.staff.get_by_telegram_id(telegram_id)
            if staff is not None and not staff.reachable:
                staff.reachable = True
                await uow.staff.save(staff)
                await uow.commit()

    async def create_invite(self, role: Role | str, *, name: str | None = None,
                            valid_for: timedelta = timedelta(days=7)) -> str:
        code = secrets.token_hex(4).upper()
        now = self.clock()
        async with self.uow_factory() as uow:
            await uow.invites.add(code, str(Role(role)), name=name, at=now, expires_at=now + valid_for)
            await uow.commit()
        return code

    async def redeem_invite(self, code: str, *, telegram_id: int, name: str) -> Staff:
        """/join CODE: a one-time code, valid 7 days, turns this Telegram user into staff."""
        now = self.clock()
        async with self.uow_factory() as uow:
            invite = await uow.invites.get(code.strip().upper(), for_update=True)
            if invite is None or invite.used_at is not None or invite.expires_at < now:
                raise DomainError("邀请码无效或已过期,请向主管索取新的邀请码。")
            existing = await uow.staff.get_by_telegram_id(telegram_id)
            if existing is not None and existing.active:
                raise DomainError(f"您已经是在职员工({existing.role_label})。")
            if existing is not None:
                existing.active, existing.reachable, existing.role = True, True, Role(invite.role)
                existing.name = invite.name or name or existing.name
                await uow.staff.save(existing)
                staff = existing
            else:
                staff = await uow.staff.add(Staff(id=None, telegram_id=telegram_id, name=invite.name or name,
                                                  role=Role(invite.role), created_at=now))
            await uow.invites.use(invite.code, telegram_id, now)
            await uow.commit()
            return staff

    async def list_staff(self, *, active_only: bool = False) -> list[Staff]:
        async with self.uow_factory() as uow:
            return await uow.staff.list(active_only=active_only)

    async def resident_for_telegram(self, telegram_id: int, name: str | None = None) -> Resident:
        """The resident behind a Telegram user, created on first contact."""
        async with self.uow_factory() as uow:
            resident = await uow.residents.get_by_telegram_id(telegram_id)
            if resident is None:
                resident = await uow.residents.add(
                    Resident(id=None, telegram_id=telegram_id, name=name, created_at=self.clock()))
                await uow.commit()
            return resident

    async def resident_for_phone(self, phone: str, name: str | None = None) -> Resident:
        """The resident behind a phone number (来电/来访 at the desk), created on first contact."""
        async with self.uow_factory() as uow:
            resident = await uow.residents.get_by_phone(phone)
            if resident is None:
                resident = await uow.residents.add(
                    Resident(id=None, telegram_id=None, name=name, phone=phone, created_at=self.clock()))
                await uow.commit()
            return resident

    async def save_resident(self, resident: Resident) -> None:
        async with self.uow_factory() as uow:
            await uow.residents.save(resident)
            await uow.commit()
