"""The use cases on a real database (SQLite and PostgreSQL): routing, repeats, reviews, numbers,
storage round trips, optimistic concurrency and schema upgrades."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.container import App, build_app
from bot.settings import Settings
from complaints.clock import ManualClock
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
    InvalidTransition,
    Location,
    PermissionDenied,
    Role,
    Status,
    Urgency,
)
from complaints.people import Resident, Staff
from complaints.services import NewComplaint, NotFound
from storage import db

SH = ZoneInfo("Asia/Shanghai")
SYSTEM = Actor.system()


async def hire(app: App, telegram_id: int, role: Role | str, name: str | None = None) -> Staff:
    return await app.roster.add_staff(telegram_id=telegram_id, name=name or f"员工{telegram_id}", role=role)


def new(text: str = "3号楼电梯坏了", category: str = "maintenance", urgency: str = "general",
        **kwargs: object) -> NewComplaint:
    return NewComplaint(text=text, category=category, urgency=urgency, **kwargs)  # type: ignore[arg-type]


async def resident(app: App, telegram_id: int = 555) -> Resident:
    return await app.roster.resident_for_telegram(telegram_id, "刘女士")


# ---- intake and routing --------------------------------------------------------------------------
async def test_submit_registers_assigns_and_promises_deadlines(app: App, clock: ManualClock) -> None:
    fixer = await hire(app, 101, "maintenance")
    c = await app.complaints.submit(new(), by=SYSTEM)
    assert c.number == "TS20261125-0001"
    assert (c.status, c.assignee_id, c.urgency) == (Status.ASSIGNED, fixer.id, Urgency.GENERAL)
    expected = app.policy.compute("general", clock())
    assert (c.accept_by, c.resolve_by) == (expected.accept_by, expected.resolve_by)
    assert [e.kind for e in c.history] == [EventKind.SUBMITTED, EventKind.ASSIGNED]
    assert c.history[1].data == {"staff_id": fixer.id, "staff_role": "maintenance"}
    assert (await app.complaints.get(c.number.lower())).history == c.history


async def test_submit_balances_the_load(app: App) -> None:
    a, b, c = [await hire(app, 100 + i, "maintenance") for i in range(3)]
    await hire(app, 200, "environment")  # another role never takes maintenance work
    first = [(await app.complaints.submit(new(), by=SYSTEM)) for _ in range(6)]
    assert [x.assignee_id for x in first] == [a.id, b.id, c.id, a.id, b.id, c.id]

    # a finishes one: now the least loaded, so the next one is theirs.
    await app.complaints.act(first[0].number, "resolve", by=a.as_actor())
    assert (await app.complaints.submit(new(), by=SYSTEM)).assignee_id == a.id

    # Deactivated staff get nothing new; their old complaints stay assigned (history kept).
    await app.roster.deactivate_staff(b.telegram_id)
    later = [(await app.complaints.submit(new(), by=SYSTEM)).assignee_id for _ in range(4)]
    assert b.id not in later and Counter(later) == {a.id: 2, c.id: 2}
    assert (await app.complaints.get(first[1].number)).assignee_id == b.id


async def test_nobody_of_the_role_falls_back_or_waits_for_triage(app: App) -> None:
    lonely = await app.complaints.submit(new(), by=SYSTEM)
    assert (lonely.status, lonely.assignee_id) == (Status.SUBMITTED, None)
    desk = await hire(app, 300, "service")
    assert (await app.complaints.submit(new(), by=SYSTEM)).assignee_id == desk.id


async def test_staff_attitude_goes_to_a_supervisor(app: App) -> None:
    await hire(app, 101, "maintenance")
    await hire(app, 300, "service")
    boss = await hire(app, 201, "supervisor")
    c = await app.complaints.submit(new("保安态度很差", category="staff_attitude", urgency="important"), by=SYSTEM)
    assert c.assignee_id == boss.id and c.history[-1].data["staff_role"] == "supervisor"


async def test_angry_resident_is_escalated_at_once(app: App) -> None:
    await hire(app, 101, "maintenance")
    c = await app.complaints.submit(new("第三次了还没修!!!", emotion=Emotion.ANGRY), by=SYSTEM)
    assert c.escalation_level == 1 and c.status is Status.ASSIGNED
    event = c.history[-1]
    assert (event.kind, event.actor_kind, event.data) == (EventKind.ESCALATED, SYSTEM.kind,
                                                          {"level": 1, "reason": "angry"})
    calm = await app.complaints.submit(new(), by=SYSTEM)
    assert calm.escalation_level == 0


async def test_repeat_within_thirty_days_is_at_least_important(app: App, clock: ManualClock) -> None:
    await hire(app, 101, "maintenance")
    me = await resident(app)
    other = await resident(app, 556)
    first = await app.complaints.submit(new(resident_id=me.id), by=me.as_actor())
    assert (first.is_repeat, first.urgency) == (False, Urgency.GENERAL)

    clock.advance(timedelta(days=10))
    again = await app.complaints.submit(new("电梯又坏了", resident_id=me.id), by=me.as_actor())
    assert (again.is_repeat, again.urgency) == (True, Urgency.IMPORTANT)
    promised = app.policy.compute("important", clock())
    assert (again.accept_by, again.resolve_by) == (promised.accept_by, promised.resolve_by)
    # Another category, another resident or an anonymous complaint is not a repeat.
    for different in (new("垃圾没收", category="environment", resident_id=me.id),
                      new(resident_id=other.id), new(anonymous=True)):
        assert not (await app.complaints.submit(different, by=SYSTEM)).is_repeat
    # An emergency stays an emergency.
    urgent = await app.complaints.submit(new("电梯困人", urgency="emergency", resident_id=me.id), by=SYSTEM)
    assert (urgent.is_repeat, urgent.urgency) == (True, Urgency.EMERGENCY)

    clock.advance(timedelta(days=31))  # every earlier one is now more than 30 days old
    later = await app.complaints.submit(new(resident_id=me.id), by=me.as_actor())
    assert (later.is_repeat, later.urgency) == (False, Urgency.GENERAL)


# ---- reviews and transfers -----------------------------------------------------------------------
async def test_review_goes_to_a_supervisor_who_never_handled_it(app: App) -> None:
    await hire(app, 101, "maintenance")
    s1, s2 = await hire(app, 201, "supervisor"), await hire(app, 202, "supervisor")
    manager = await hire(app, 401, "manager")
    await hire(app, 300, "service")  # the desk is not where a 复核 goes while a manager is there
    me = await resident(app)
    c = await app.complaints.submit(new("保安骂人", category="staff_attitude", resident_id=me.id), by=SYSTEM)
    assert c.assignee_id == s1.id
    await app.complaints.act(c.number, "accept", by=s1.as_actor())
    await app.complaints.act(c.number, "resolve", by=s1.as_actor(), note="已道歉")
    c = await app.complaints.follow_up(c.number, by=me.as_actor(), solved=False, comment="没有道歉")
    assert (c.status, c.assignee_id) == (Status.REVIEW, s2.id)
    assert [e.kind for e in c.history[-3:]] == [EventKind.FOLLOW_UP, EventKind.REVIEW, EventKind.ASSIGNED]

    # Reviewed again and still unhappy: both supervisors have held it, so it goes up to the manager.
    await app.complaints.act(c.number, "accept", by=s2.as_actor())
    await app.complaints.act(c.number, "resolve", by=s2.as_actor())
    c = await app.complaints.follow_up(c.number, by=me.as_actor(), solved=True, rating=1)
    assert (c.status, c.assignee_id) == (Status.REVIEW, manager.id)


async def test_review_skips_a_supervisor_who_took_it_over(app: App, clock: ManualClock) -> None:
    fixer = await hire(app, 101, "maintenance")
    s1, s2 = await hire(app, 201, "supervisor"), await hire(app, 202, "supervisor")
    me = await resident(app)
    c = await app.complaints.submit(new(resident_id=me.id), by=SYSTEM)
    assert c.assignee_id == fixer.id
    await app.complaints.act(c.number, "accept", by=s1.as_actor())  # takes it over, no assignment event
    await app.complaints.act(c.number, "resolve", by=s1.as_actor())
    await app.complaints.follow_up(c.number, by=me.as_actor(), solved=True, rating=4)
    clock.advance(timedelta(days=29))
    c = await app.complaints.act(c.number, "reopen", by=me.as_actor(), note="又漏水了")
    assert (c.status, c.assignee_id) == (Status.REVIEW, s2.id)
    # The review is accepted like any assignment, and later closes normally.
    await app.complaints.act(c.number, "accept", by=s2.as_actor())
    await app.complaints.act(c.number, "resolve", by=s2.as_actor())
    c = await app.complaints.follow_up(c.number, by=me.as_actor(), solved=True, rating=5)
    assert c.status is Status.CLOSED

    clock.advance(timedelta(days=31))
    with pytest.raises(InvalidTransition, match="30天"):
        await app.complaints.act(c.number, "reopen", by=me.as_actor())


async def test_transfer_picks_another_staff_member(app: App) -> None:
    m1, m2 = await hire(app, 101, "maintenance"), await hire(app, 102, "maintenance")
    s1 = await hire(app, 201, "supervisor")
    c = await app.complaints.submit(new(), by=SYSTEM)
    assert c.assignee_id == m1.id
    c = await app.complaints.act(c.number, "transfer", by=m1.as_actor(), note="不在我片区")
    assert (c.status, c.assignee_id) == (Status.ASSIGNED, m2.id)
    assert c.history[-1].data == {"staff_id": m2.id, "from_staff_id": m1.id, "staff_role": "maintenance"}
    with pytest.raises(PermissionDenied):  # m1 no longer holds it
        await app.complaints.act(c.number, "transfer", by=m1.as_actor())
    c = await app.complaints.act(c.number, "transfer", by=m2.as_actor(), to_staff_id=s1.id)
    assert c.assignee_id == s1.id

    await app.roster.deactivate_staff(m2.telegram_id)
    with pytest.raises(DomainError, match="停用"):
        await app.complaints.act(c.number, "transfer", by=s1.as_actor(), to_staff_id=m2.id)
    await app.roster.deactivate_staff(m1.telegram_id)
    with pytest.raises(DomainError, match="没有其他"):
        await app.complaints.act(c.number, "transfer", by=s1.as_actor())
    assert (await app.complaints.get(c.number)).assignee_id == s1.id


async def test_transferring_a_review_keeps_it_with_fresh_supervisors(app: App) -> None:
    m1, m2 = await hire(app, 101, "maintenance"), await hire(app, 102, "maintenance")
    s1, s2 = await hire(app, 201, "supervisor"), await hire(app, 202, "supervisor")
    me = await resident(app)
    c = await app.complaints.submit(new(resident_id=me.id), by=SYSTEM)
    await app.complaints.act(c.number, "resolve", by=m1.as_actor())
    c = await app.complaints.act(c.number, "reopen", by=me.as_actor())
    assert (c.status, c.assignee_id) == (Status.REVIEW, s1.id)
    c = await app.complaints.act(c.number, "transfer", by=s1.as_actor())
    # Not m2 (idle, but a review belongs to supervisors) and never m1 (who handled it).
    assert (c.status, c.assignee_id) == (Status.REVIEW, s2.id)
    assert m2.id not in c.handled_by()


async def test_actions_through_the_service(app: App) -> None:
    fixer = await hire(app, 101, "maintenance")
    desk = await hire(app, 300, "service")
    me = await resident(app)
    with pytest.raises(NotFound, match="TS20990101-0001"):
        await app.complaints.act("TS20990101-0001", "accept", by=fixer.as_actor())
    c = await app.complaints.submit(new(resident_id=me.id, contact=Contact("刘女士", "13912345678")), by=SYSTEM)
    assert c.assignee_id == fixer.id
    with pytest.raises(DomainError, match="未知操作"):
        await app.complaints.act(c.number, "explode", by=fixer.as_actor())
    with pytest.raises(PermissionDenied):
        await app.complaints.act(c.number, "withdraw", by=fixer.as_actor())
    assert await app.complaints.reveal_contact(c.number, by=fixer.as_actor()) == "13912345678"
    c = await app.complaints.add_info(c.number, by=me.as_actor(), text="在2单元",
                                      attachments=[Attachment("photo", "AgAD-9")])
    c = await app.complaints.delay(c.number, by=fixer.as_actor(), new_resolve_by=c.resolve_by + timedelta(days=2),
                                   reason="等电梯厂家配件")
    c = await app.complaints.act(c.number, "external", by=desk.as_actor(), note="电梯维保属物业外包公司")
    assert (c.status, c.external_referral) == (Status.EXTERNAL, "电梯维保属物业外包公司")
    c = await app.complaints.act(c.number, "close", by=desk.as_actor())
    assert c.status is Status.CLOSED
    other = await app.complaints.submit(new(resident_id=me.id), by=SYSTEM)
    assert (await app.complaints.act(other.number, "withdraw", by=me.as_actor())).status is Status.WITHDRAWN
    assert {x.number for x in await app.complaints.list(statuses=[Status.CLOSED, Status.WITHDRAWN])} == {
        c.number, other.number}


# ---- complaint numbers ---------------------------------------------------------------------------
async def test_numbers_unique_under_concurrency(app: App, settings: Settings, clock: ManualClock) -> None:
    a, b = await hire(app, 101, "maintenance"), await hire(app, 102, "maintenance")
    results = await asyncio.gather(*(app.complaints.submit(new(), by=SYSTEM) for _ in range(20)))
    numbers = [c.number for c in results]
    assert sorted(numbers) == [f"TS20261125-{i:04d}" for i in range(1, 21)]
    # Routing reads the load after the number is drawn, so even concurrent submits stay balanced.
    assert Counter(c.assignee_id for c in results) == {a.id: 10, b.id: 10}

    # A second process on the same database (two bot replicas, or the bot and `wuye complaints submit`).
    other = await build_app(settings, clock=clock)
    try:
        more = await asyncio.gather(*(x.complaints.submit(new(), by=SYSTEM)
                                      for _ in range(10) for x in (app, other)))
    finally:
        await other.close()
    all_numbers = numbers + [c.number for c in more]
    assert len(set(all_numbers)) == 40
    assert sorted(all_numbers) == [f"TS20261125-{i:04d}" for i in range(1, 41)]


async def test_sequence_restarts_each_local_day(app: App, clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 25, 23, 59, tzinfo=SH))
    assert [(await app.complaints.submit(new(), by=SYSTEM)).number for _ in range(2)] == [
        "TS20261125-0001", "TS20261125-0002"]
    # 00:01 in Shanghai is still the 25th in UTC: the local date names the number.
    clock.set(datetime(2026, 11, 26, 0, 1, tzinfo=SH))
    assert (await app.complaints.submit(new(), by=SYSTEM)).number == "TS20261126-0001"
    clock.set(datetime(2026, 11, 25, 23, 0, tzinfo=ZoneInfo("UTC")))  # 07:00 on the 26th in Shanghai
    assert (await app.complaints.submit(new(), by=SYSTEM)).number == "TS20261126-0002"


# ---- storage round trips -------------------------------------------------------------------------
async def test_complaint_round_trip_keeps_every_field(app: App, clock: ManualClock) -> None:
    guard = await hire(app, 101, "security")
    me = await resident(app)
    now = clock()
    c = Complaint.register(
        number="TS20261125-0042", text="南门门禁坏了,陌生人随便进", category="security",
        urgency=Urgency.IMPORTANT, channel=Channel.VISIT, at=now, accept_by=now + timedelta(hours=2),
        resolve_by=now + timedelta(days=9), by=me.as_actor(), resident_id=me.id,
        contact=Contact("刘女士", "13912345678"), location=Location("3", "2", "301", "南门", "3号楼2单元301,南门"),
        emotion=Emotion.ANGRY, secondary=("maintenance", "environment"),
        attachments=[Attachment("photo", "AgAD-1", "门禁"), Attachment("document", "BQAD-2")], is_repeat=True)
    staff_actor = guard.as_actor()
    c.assign(guard.id, by=SYSTEM, at=now, staff_role="security")  # type: ignore[arg-type]
    c.escalate(by=SYSTEM, at=now, reason="angry", note="业主情绪激动")
    c.accept(by=staff_actor, at=now + timedelta(minutes=20))
    c.add_note("夜班再巡一次", by=staff_actor, at=now + timedelta(minutes=21))
    c.delay(c.resolve_by + timedelta(days=1), by=staff_actor, at=now + timedelta(hours=1), reason="等厂家")
    c.resolve(by=staff_actor, at=now + timedelta(hours=5, microseconds=1234), note="已更换读卡器")
    c.follow_up(by=me.as_actor(), at=now + timedelta(days=1), solved=True, rating=4, comment="满意")
    async with app.uow() as uow:
        await uow.complaints.add(c)
        await uow.commit()
    assert c.id is not None

    async with app.uow() as uow:
        loaded = await uow.complaints.get(c.number)
    assert loaded is not None
    assert loaded == c  # every field, the attachments and the whole history with its data
    assert loaded.id == c.id and loaded.pending_events == []
    assert loaded.resolved_at == now + timedelta(hours=5, microseconds=1234)
    assert loaded.history[-2].data == {"solved": True, "rating": 4}

    # A loaded complaint saved again appends only what is new.
    async with app.uow() as uow:
        again = await uow.complaints.get(c.number, for_update=True)
        assert again is not None
        again.reopen(by=me.as_actor(), at=now + timedelta(days=2))
        again.add_info(by=me.as_actor(), at=now + timedelta(days=2), attachments=[Attachment("video", "BAAD-3")])
        await uow.complaints.add(again)
        await uow.commit()
    async with app.uow() as uow:
        reloaded = await uow.complaints.get(c.number)
        assert reloaded == again and len(reloaded.history) == len(c.history) + 2
        assert [a.file_id for a in reloaded.attachments] == ["AgAD-1", "BQAD-2", "BAAD-3"]

        # Queries.
        assert [x.number for x in await uow.complaints.list(statuses=[Status.REVIEW])] == [c.number]
        assert await uow.complaints.list(statuses=[Status.CLOSED]) == []
        assert [x.number for x in await uow.complaints.list(resident_id=me.id)] == [c.number]
        assert await uow.complaints.list(assignee_id=guard.id) == []  # a review clears the holder
        assert await uow.complaints.list(overdue_at=reloaded.resolve_by) == []
        overdue = await uow.complaints.list(overdue_at=reloaded.resolve_by + timedelta(seconds=1))
        assert [x.number for x in overdue] == [c.number]
        assert await uow.complaints.count_recent(me.id, "security", now) == 1  # type: ignore[arg-type]
        assert await uow.complaints.count_recent(me.id, "security", now + timedelta(seconds=1)) == 0  # type: ignore[arg-type]
        assert await uow.complaints.count_recent(me.id, "environment", now) == 0  # type: ignore[arg-type]
        assert await uow.complaints.get("TS20990101-0001") is None


async def test_staff_resident_and_calendar_round_trip(app: App, clock: ManualClock) -> None:
    async with app.uow() as uow:
        s = await uow.staff.add(Staff(id=None, telegram_id=9_000_000_001, name="张师傅", role=Role.MAINTENANCE,
                                      phone="13800000001", created_at=clock()))
        r = await uow.residents.add(Resident(id=None, telegram_id=None, name="刘女士", phone="13912345678",
                                             prefers_anonymous=True, created_at=clock()))
        await uow.calendar.set(datetime(2027, 1, 4).date(), False, "测试", clock())
        await uow.commit()
    async with app.uow() as uow:
        assert await uow.staff.get(s.id) == s  # type: ignore[arg-type]
        assert await uow.staff.get_by_telegram_id(9_000_000_001) == s  # a 64-bit Telegram id
        assert await uow.staff.list(role=Role.SECURITY) == []
        s.reachable, s.phone = False, None
        await uow.staff.save(s)
        assert await uow.residents.get(r.id) == r  # type: ignore[arg-type]
        assert await uow.residents.get_by_phone("13912345678") == r  # type: ignore[attr-defined]
        r.name = "刘女士(3-2-301)"
        await uow.residents.save(r)
        await uow.calendar.set(datetime(2027, 1, 4).date(), True, "改为调休上班", clock())
        await uow.commit()
    async with app.uow() as uow:
        assert (await uow.staff.candidates())[0].reachable is False
        assert (await uow.staff.get(s.id)).phone is None  # type: ignore[arg-type,union-attr]
        assert (await uow.residents.get(r.id)).name == "刘女士(3-2-301)"  # type: ignore[arg-type,union-attr]
        overrides = await uow.calendar.overrides()
        assert overrides == {datetime(2027, 1, 4).date(): (True, "改为调休上班")}


async def test_candidates_count_only_open_complaints(app: App) -> None:
    a, b = await hire(app, 101, "maintenance"), await hire(app, 102, "maintenance")
    x = await app.complaints.submit(new(), by=SYSTEM)
    await app.complaints.submit(new(), by=SYSTEM)
    await app.complaints.submit(new(), by=SYSTEM)
    await app.complaints.act(x.number, "resolve", by=a.as_actor())
    async with app.uow() as uow:
        loads = {c.id: c.open_load for c in await uow.staff.candidates()}
    assert loads == {a.id: 1, b.id: 1}


# ---- optimistic concurrency ----------------------------------------------------------------------
@pytest.mark.parametrize("second_write", ["state", "note only"])
async def test_a_stale_copy_cannot_overwrite(app: App, clock: ManualClock, second_write: str) -> None:
    fixer = await hire(app, 101, "maintenance")
    boss = await hire(app, 201, "supervisor")
    c = await app.complaints.submit(new(), by=SYSTEM)
    first, second = app.uow(), app.uow()
    async with first, second:
        mine = await first.complaints.get(c.number)
        theirs = await second.complaints.get(c.number)
        assert mine is not None and theirs is not None
        mine.accept(by=fixer.as_actor(), at=clock())
        await first.complaints.add(mine)
        await first.commit()
        if second_write == "state":
            theirs.escalate(by=boss.as_actor(), at=clock(), note="催办")
        else:
            theirs.add_note("业主又来电", by=boss.as_actor(), at=clock())
        with pytest.raises(ConcurrentUpdate) as info:
            await second.complaints.add(theirs)
            await second.commit()
    assert isinstance(info.value, DomainError) and "请刷新" in str(info.value)
    stored = await app.complaints.get(c.number)
    assert stored.status is Status.IN_PROGRESS and stored.escalation_level == 0
    assert [e.kind for e in stored.history][-1] is EventKind.ACCEPTED  # nothing of the stale write

    # Saving the fresh state works, and twice in a row from one unit of work too.
    async with app.uow() as uow:
        fresh = await uow.complaints.get(c.number)
        assert fresh is not None
        fresh.add_note("一", by=boss.as_actor(), at=clock())
        await uow.complaints.add(fresh)
        fresh.add_note("二", by=boss.as_actor(), at=clock())
        await uow.complaints.add(fresh)
        await uow.commit()
    assert [e.note for e in (await app.complaints.get(c.number)).history[-2:]] == ["一", "二"]


async def test_concurrent_actions_are_decided_on_fresh_state(app: App) -> None:
    fixer = await hire(app, 101, "maintenance")
    boss = await hire(app, 201, "supervisor")
    c = await app.complaints.submit(new(), by=SYSTEM)
    results = await asyncio.gather(app.complaints.act(c.number, "accept", by=fixer.as_actor()),
                                   app.complaints.act(c.number, "accept", by=boss.as_actor()),
                                   return_exceptions=True)
    winners = [r for r in results if isinstance(r, Complaint)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1
    # The loser's action is re-decided on the state the winner left: already in progress (the
    # supervisor lost) or no longer theirs (the supervisor took it over) — told in words either way.
    loser = losers[0]
    assert isinstance(loser, InvalidTransition | PermissionDenied), repr(loser)
    assert "处理中" in str(loser) or "没有分派给您" in str(loser)

    escalations = await asyncio.gather(*(app.complaints.act(c.number, "escalate", by=boss.as_actor(), note=str(i))
                                         for i in range(3)))
    assert len(escalations) == 3
    stored = await app.complaints.get(c.number)
    assert sorted(e.note for e in stored.history if e.kind is EventKind.ESCALATED) == ["0", "1", "2"]
    assert stored.escalation_level == 2
    assert [e.kind for e in stored.history].count(EventKind.ACCEPTED) == 1


# ---- roster and actors ---------------------------------------------------------------------------
async def test_roster_and_actor_lookup(app: App) -> None:
    fixer = await hire(app, 101, "maintenance", "张师傅")
    with pytest.raises(DomainError, match="已经是在职员工"):
        await hire(app, 101, "security")
    with pytest.raises(DomainError):
        await app.roster.add_staff(telegram_id=102, name="  ", role="security")
    assert await app.complaints.actor_for(101) == fixer.as_actor()
    c = await app.complaints.submit(new(), by=SYSTEM)

    removed = await app.roster.deactivate_staff(101)
    assert removed.active is False
    with pytest.raises(PermissionDenied, match="101"):
        await app.complaints.actor_for(101)
    with pytest.raises(NotFound):
        await app.roster.deactivate_staff(999)
    assert [s.telegram_id for s in await app.roster.list_staff(active_only=True)] == []
    assert [s.telegram_id for s in await app.roster.list_staff()] == [101]

    rehired = await hire(app, 101, "security", "张师傅")
    assert (rehired.id, rehired.role, rehired.active) == (fixer.id, Role.SECURITY, True)
    assert (await app.complaints.get(c.number)).history[1].data["staff_id"] == fixer.id

    me = await resident(app)
    assert await app.roster.resident_for_telegram(555) == me  # created once
    assert await app.complaints.actor_for(555) == me.as_actor()


# ---- schema --------------------------------------------------------------------------------------
async def test_db_upgrade_is_idempotent(app: App, settings: Settings, clock: ManualClock) -> None:
    c = await app.complaints.submit(new(), by=SYSTEM)
    await db.upgrade(app.engine)
    await db.upgrade(app.engine)
    assert await db.current_revision(app.engine) == db.head_revision() is not None
    again = await build_app(settings, clock=clock)  # upgrades once more on start
    try:
        assert (await again.complaints.get(c.number)).history == c.history
    finally:
        await again.close()
