"""The complaint aggregate on its own: every verb, who may use it, in which status, and its history.

Pure domain: no database, no event loop; the whole file runs in milliseconds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from complaints.model import (
    EVENT_LABELS,
    MAX_ESCALATION_LEVEL,
    REOPEN_WINDOW,
    Actor,
    ActorKind,
    Attachment,
    Channel,
    Complaint,
    Contact,
    DomainError,
    Emotion,
    EventKind,
    InvalidTransition,
    Location,
    PermissionDenied,
    Status,
    Urgency,
    format_number,
    mask_phone,
)

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=SH)
T1 = T0 + timedelta(hours=1)

RESIDENT = Actor.resident(7, "刘女士")
OTHER_RESIDENT = Actor.resident(8)
STAFF = Actor.staff(1, "maintenance", "张师傅")  # the assignee in every fixture below
OTHER_STAFF = Actor.staff(2, "maintenance", "王师傅")
SUPERVISOR = Actor.staff(10, "supervisor", "李主任")
MANAGER = Actor.staff(20, "manager", "赵经理")
DESK = Actor.staff(30, "service", "客服小陈")
SYSTEM = Actor.system()

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def new_complaint(**overrides: object) -> Complaint:
    kwargs: dict[str, object] = dict(
        number="TS20261125-0001", text="3号楼电梯坏了,困在里面", category="maintenance",
        urgency="general", channel="telegram", at=T0, accept_by=T0 + timedelta(hours=4),
        resolve_by=T0 + timedelta(days=3), by=RESIDENT, resident_id=RESIDENT.id,
        contact=Contact("刘女士", "13912345678"), location=Location("3", "2", "301"),
    )
    kwargs.update(overrides)
    return Complaint.register(**kwargs)  # type: ignore[arg-type]


def in_status(status: Status) -> Complaint:
    """A complaint brought to ``status`` through the verbs themselves (never by poking fields)."""
    c = new_complaint()
    if status is Status.SUBMITTED:
        return c
    c.assign(STAFF.id, by=SYSTEM, at=T0)  # type: ignore[arg-type]
    if status is Status.ASSIGNED:
        return c
    if status is Status.WITHDRAWN:
        c.withdraw(by=RESIDENT, at=T0)
        return c
    c.accept(by=STAFF, at=T0)
    if status is Status.IN_PROGRESS:
        return c
    if status is Status.EXTERNAL:
        c.refer_external(by=STAFF, at=T0, referral="供水属自来水公司,请拨 96116")
        return c
    c.resolve(by=STAFF, at=T0, note="已更换电梯门机")
    if status is Status.RESOLVED:
        return c
    if status is Status.CLOSED:
        c.close(by=DESK, at=T0)
        return c
    assert status is Status.REVIEW
    c.reopen(by=RESIDENT, at=T0, note="还是坏的")
    return c


def assert_polite(error: DomainError) -> None:
    message = str(error)
    assert message.strip() and CHINESE.search(message), f"not a message for a person: {message!r}"


# ---- the status matrix ---------------------------------------------------------------------------
OPEN = {Status.SUBMITTED, Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW}
WORKING = {Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW}

# verb → (the call, made by an actor who is allowed to do it, statuses it is allowed in, resulting status)
# A resulting status of None means "unchanged".
Verb = Callable[[Complaint], object]
VERBS: dict[str, tuple[Verb, set[Status], Status | None]] = {
    "assign": (lambda c: c.assign(2, by=SUPERVISOR, at=T1), OPEN, Status.ASSIGNED),
    "accept": (lambda c: c.accept(by=SUPERVISOR, at=T1), {Status.ASSIGNED, Status.REVIEW},
               Status.IN_PROGRESS),
    "transfer": (lambda c: c.transfer(99, by=SUPERVISOR, at=T1), WORKING, Status.ASSIGNED),
    "escalate": (lambda c: c.escalate(by=SUPERVISOR, at=T1), OPEN, None),
    "delay": (lambda c: c.delay(T0 + timedelta(days=9), by=SUPERVISOR, at=T1, reason="等配件"),
              WORKING, None),
    "resolve": (lambda c: c.resolve(by=SUPERVISOR, at=T1, note="修好了"), WORKING, Status.RESOLVED),
    "refer_external": (lambda c: c.refer_external(by=SUPERVISOR, at=T1, referral="燃气公司"), OPEN,
                       Status.EXTERNAL),
    "close": (lambda c: c.close(by=SUPERVISOR, at=T1), {Status.RESOLVED, Status.EXTERNAL}, Status.CLOSED),
    "withdraw": (lambda c: c.withdraw(by=RESIDENT, at=T1), OPEN, Status.WITHDRAWN),
    "add_info": (lambda c: c.add_info(by=RESIDENT, at=T1, text="补充:在2单元"), OPEN, None),
    "follow_up": (lambda c: c.follow_up(by=RESIDENT, at=T1, solved=True, rating=5), {Status.RESOLVED},
                  Status.CLOSED),
    "reopen": (lambda c: c.reopen(by=RESIDENT, at=T1), {Status.RESOLVED, Status.CLOSED}, Status.REVIEW),
}


@pytest.mark.parametrize("status", list(Status), ids=str)
@pytest.mark.parametrize("verb", list(VERBS))
def test_status_matrix(verb: str, status: Status) -> None:
    call, allowed, result = VERBS[verb]
    c = in_status(status)
    before = list(c.history)
    if status not in allowed:
        with pytest.raises(InvalidTransition) as info:
            call(c)
        assert_polite(info.value)
        assert c.status is status and c.history == before  # a refused action changes nothing
        return
    call(c)
    expected = result or status
    if verb in ("assign", "transfer") and status is Status.REVIEW:
        expected = Status.REVIEW  # a 复核 stays one until the new holder accepts it
    assert c.status is expected
    new = c.history[len(before):]
    assert new, "every action leaves an event"
    assert c.history[:len(before)] == before
    assert new[0].from_status is status and new[-1].to_status is expected
    assert all(e.at == T1 for e in new)


# ---- who may act ---------------------------------------------------------------------------------
# verb → (the call for a given actor, status to try it in, actors refused, actors allowed)
ActorVerb = Callable[[Complaint, Actor], object]
PERMISSIONS: dict[str, tuple[ActorVerb, Status, list[Actor], list[Actor]]] = {
    "assign": (lambda c, a: c.assign(2, by=a, at=T1), Status.SUBMITTED,
               [STAFF, RESIDENT], [SYSTEM, SUPERVISOR, MANAGER, DESK]),
    "accept": (lambda c, a: c.accept(by=a, at=T1), Status.ASSIGNED,
               [OTHER_STAFF, DESK, RESIDENT, SYSTEM], [STAFF, SUPERVISOR, MANAGER]),
    "transfer": (lambda c, a: c.transfer(99, by=a, at=T1), Status.IN_PROGRESS,
                 [OTHER_STAFF, RESIDENT, SYSTEM], [STAFF, SUPERVISOR, DESK]),
    "escalate": (lambda c, a: c.escalate(by=a, at=T1), Status.IN_PROGRESS,
                 [OTHER_STAFF, RESIDENT], [STAFF, SUPERVISOR, SYSTEM, DESK]),
    "reveal_contact": (lambda c, a: c.reveal_contact(by=a, at=T1), Status.IN_PROGRESS,
                       [OTHER_STAFF, RESIDENT, SYSTEM], [STAFF, SUPERVISOR, DESK]),
    "add_note": (lambda c, a: c.add_note("业主白天不在家", by=a, at=T1), Status.IN_PROGRESS,
                 [RESIDENT, SYSTEM], [STAFF, OTHER_STAFF, SUPERVISOR]),
    "delay": (lambda c, a: c.delay(T0 + timedelta(days=9), by=a, at=T1, reason="等配件"),
              Status.IN_PROGRESS, [OTHER_STAFF, DESK, RESIDENT], [STAFF, SUPERVISOR]),
    "resolve": (lambda c, a: c.resolve(by=a, at=T1), Status.IN_PROGRESS,
                [OTHER_STAFF, DESK, RESIDENT, SYSTEM], [STAFF, SUPERVISOR, MANAGER]),
    "refer_external": (lambda c, a: c.refer_external(by=a, at=T1, referral="燃气公司"), Status.IN_PROGRESS,
                       [OTHER_STAFF, RESIDENT], [STAFF, SUPERVISOR, DESK]),
    "close": (lambda c, a: c.close(by=a, at=T1), Status.RESOLVED,
              [STAFF, RESIDENT], [DESK, SUPERVISOR, SYSTEM]),
    "withdraw": (lambda c, a: c.withdraw(by=a, at=T1), Status.IN_PROGRESS,
                 [OTHER_RESIDENT, STAFF, SUPERVISOR, DESK, SYSTEM], [RESIDENT]),
    "add_info": (lambda c, a: c.add_info(by=a, at=T1, text="补充"), Status.IN_PROGRESS,
                 [OTHER_RESIDENT, STAFF, SYSTEM], [RESIDENT, DESK, SUPERVISOR]),
    "follow_up": (lambda c, a: c.follow_up(by=a, at=T1, solved=True, rating=4), Status.RESOLVED,
                  [OTHER_RESIDENT, STAFF, SYSTEM], [RESIDENT, DESK, SUPERVISOR]),
    "reopen": (lambda c, a: c.reopen(by=a, at=T1), Status.CLOSED,
               [OTHER_RESIDENT, STAFF, SYSTEM], [RESIDENT, SUPERVISOR, DESK]),
}


@pytest.mark.parametrize("verb", list(PERMISSIONS))
def test_who_may_act(verb: str) -> None:
    call, status, refused, allowed = PERMISSIONS[verb]
    for actor in refused:
        c = in_status(status)
        before = list(c.history)
        with pytest.raises(PermissionDenied) as info:
            call(c, actor)
        assert_polite(info.value)
        assert c.status is status and c.history == before, f"{verb} by {actor} changed the complaint"
    for actor in allowed:
        c = in_status(status)
        call(c, actor)
        event = c.history[-1]
        assert (event.actor_kind, event.actor_id) == (actor.kind, actor.id), f"{verb} by {actor}"


def test_permission_is_checked_before_status() -> None:
    # A stranger learns nothing about the complaint's state from the refusal.
    c = in_status(Status.CLOSED)
    with pytest.raises(PermissionDenied):
        c.resolve(by=OTHER_STAFF, at=T1)


# ---- events --------------------------------------------------------------------------------------
def test_register_records_the_first_event() -> None:
    c = new_complaint(urgency=Urgency.IMPORTANT, emotion="angry", secondary=["security"])
    assert c.status is Status.SUBMITTED and c.is_angry and c.secondary == ("security",)
    (event,) = c.history
    assert event.kind is EventKind.SUBMITTED and event.label == "登记受理"
    assert (event.actor_kind, event.actor_id, event.at) == (ActorKind.RESIDENT, 7, T0)
    assert (event.from_status, event.to_status) == (None, Status.SUBMITTED)
    assert event.data == {"urgency": "important", "category": "maintenance",
                          "accept_by": c.accept_by.isoformat(), "resolve_by": c.resolve_by.isoformat()}
    assert c.pending_events == c.history


def test_register_refuses_empty_text_and_drops_contact_when_anonymous() -> None:
    with pytest.raises(DomainError) as info:
        new_complaint(text="   ")
    assert_polite(info.value)
    c = new_complaint(anonymous=True)
    assert c.anonymous and c.contact == Contact()


def test_every_event_records_actor_time_kind_statuses_and_note() -> None:
    c = new_complaint()
    c.assign(1, by=SYSTEM, at=T0, staff_role="maintenance")
    c.accept(by=STAFF, at=T0 + timedelta(minutes=5))
    c.add_note("需要配件", by=STAFF, at=T0 + timedelta(minutes=6))
    c.resolve(by=STAFF, at=T0 + timedelta(hours=2), note="已修复")
    rows = [(e.kind, e.actor_kind, e.actor_id, e.actor_role, e.from_status, e.to_status, e.note, e.at)
            for e in c.history]
    assert rows == [
        (EventKind.SUBMITTED, ActorKind.RESIDENT, 7, None, None, Status.SUBMITTED, None, T0),
        (EventKind.ASSIGNED, ActorKind.SYSTEM, None, None, Status.SUBMITTED, Status.ASSIGNED, None, T0),
        (EventKind.ACCEPTED, ActorKind.STAFF, 1, "maintenance", Status.ASSIGNED, Status.IN_PROGRESS, None,
         T0 + timedelta(minutes=5)),
        (EventKind.NOTE, ActorKind.STAFF, 1, "maintenance", Status.IN_PROGRESS, Status.IN_PROGRESS,
         "需要配件", T0 + timedelta(minutes=6)),
        (EventKind.RESOLVED, ActorKind.STAFF, 1, "maintenance", Status.IN_PROGRESS, Status.RESOLVED,
         "已修复", T0 + timedelta(hours=2)),
    ]
    assert c.history[1].data == {"staff_id": 1, "staff_role": "maintenance"}
    assert (c.accepted_at, c.resolved_at, c.resolution) == (T0 + timedelta(minutes=5), T0 + timedelta(hours=2),
                                                           "已修复")


def test_history_is_append_only_and_events_immutable() -> None:
    c = in_status(Status.IN_PROGRESS)
    snapshot = list(c.history)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.history[0].note = "篡改"  # type: ignore[misc]
    c.escalate(by=STAFF, at=T1)
    c.resolve(by=STAFF, at=T1)
    c.follow_up(by=RESIDENT, at=T1, solved=False)
    c.accept(by=SUPERVISOR, at=T1)
    assert len(c.history) > len(snapshot)
    # The old lines are the very same objects, in the same order.
    assert all(old is new for old, new in zip(snapshot, c.history, strict=False))


def test_public_history_hides_internal_work() -> None:
    c = in_status(Status.IN_PROGRESS)
    c.add_note("内部备注", by=STAFF, at=T1)
    c.reveal_contact(by=STAFF, at=T1)
    c.transfer(2, by=STAFF, at=T1)
    kinds = [e.kind for e in c.public_history()]
    assert kinds == [EventKind.SUBMITTED, EventKind.ASSIGNED, EventKind.ACCEPTED]


# ---- particular verbs ----------------------------------------------------------------------------
def test_supervisor_accepting_takes_the_complaint_over() -> None:
    c = in_status(Status.ASSIGNED)
    c.accept(by=SUPERVISOR, at=T1)
    assert c.assignee_id == SUPERVISOR.id and c.is_assignee(SUPERVISOR) and not c.is_assignee(STAFF)


def test_transfer_records_from_and_to_and_refuses_the_holder() -> None:
    c = in_status(Status.IN_PROGRESS)
    with pytest.raises(InvalidTransition):
        c.transfer(STAFF.id, by=STAFF, at=T1)  # type: ignore[arg-type]
    c.transfer(2, by=STAFF, at=T1, note="不是我片区", staff_role="maintenance")
    assert (c.status, c.assignee_id, c.accepted_at) == (Status.ASSIGNED, 2, None)
    assert c.history[-1].data == {"staff_id": 2, "from_staff_id": 1, "staff_role": "maintenance"}
    assert c.history[-1].note == "不是我片区"


@pytest.mark.parametrize(("solved", "rating"), [(True, 5), (True, 3), (True, None)])
def test_follow_up_satisfied_closes(solved: bool, rating: int | None) -> None:
    c = in_status(Status.RESOLVED)
    assert c.follow_up(by=RESIDENT, at=T1, solved=solved, rating=rating, comment="谢谢") is Status.CLOSED
    assert (c.satisfied, c.rating, c.closed_at, c.assignee_id) == (solved, rating, T1, STAFF.id)
    follow, closed = c.history[-2:]
    assert follow.kind is EventKind.FOLLOW_UP and follow.data == {"solved": solved, "rating": rating}
    assert follow.note == "谢谢"
    assert (closed.kind, closed.from_status, closed.to_status) == (EventKind.CLOSED, Status.RESOLVED,
                                                                   Status.CLOSED)


@pytest.mark.parametrize(("solved", "rating"), [(False, 5), (False, None), (True, 2), (True, 1)])
def test_follow_up_unsolved_or_unhappy_goes_to_review(solved: bool, rating: int | None) -> None:
    c = in_status(Status.RESOLVED)
    assert c.follow_up(by=RESIDENT, at=T1, solved=solved, rating=rating) is Status.REVIEW
    # Not back to the same person: the holder is cleared for routing to a supervisor.
    assert (c.assignee_id, c.accepted_at, c.resolved_at, c.closed_at) == (None, None, None, None)
    review = c.history[-1]
    assert (review.kind, review.from_status, review.to_status) == (EventKind.REVIEW, Status.RESOLVED,
                                                                   Status.REVIEW)
    assert review.note


@pytest.mark.parametrize("rating", [0, 6])
def test_follow_up_rating_out_of_range(rating: int) -> None:
    c = in_status(Status.RESOLVED)
    with pytest.raises(DomainError) as info:
        c.follow_up(by=RESIDENT, at=T1, solved=True, rating=rating)
    assert_polite(info.value)
    assert c.status is Status.RESOLVED


def test_reopen_within_thirty_days_of_closing() -> None:
    c = in_status(Status.CLOSED)
    c.reopen(by=RESIDENT, at=T0 + REOPEN_WINDOW, note="又坏了")
    assert (c.status, c.assignee_id, c.closed_at) == (Status.REVIEW, None, None)
    assert c.history[-1].note == "又坏了" and c.history[-1].from_status is Status.CLOSED


def test_reopen_after_thirty_days_is_refused() -> None:
    c = in_status(Status.CLOSED)
    with pytest.raises(InvalidTransition) as info:
        c.reopen(by=RESIDENT, at=T0 + REOPEN_WINDOW + timedelta(minutes=1))
    assert "30天" in str(info.value)
    assert c.status is Status.CLOSED


def test_handled_by_counts_every_holder() -> None:
    c = in_status(Status.IN_PROGRESS)
    c.transfer(2, by=STAFF, at=T1)
    assert c.handled_by() == {1, 2}
    c.accept(by=SUPERVISOR, at=T1)  # took it over without an assignment event
    c.resolve(by=MANAGER, at=T1)  # resolved it without holding it
    assert c.handled_by() == {1, 2, SUPERVISOR.id, MANAGER.id}


def test_escalation_levels_cap_at_manager() -> None:
    c = in_status(Status.ASSIGNED)
    levels = [c.escalate(by=SYSTEM, at=T1, reason="overdue") for _ in range(3)]
    assert levels == [1, 2, 2] and c.escalation_level == MAX_ESCALATION_LEVEL == 2
    assert [e.data for e in c.history if e.kind is EventKind.ESCALATED] == [
        {"level": 1, "reason": "overdue"}, {"level": 2, "reason": "overdue"}, {"level": 2, "reason": "overdue"}]
    assert c.status is Status.ASSIGNED


def test_delay_needs_a_reason_and_a_later_date() -> None:
    c = in_status(Status.IN_PROGRESS)
    old = c.resolve_by
    with pytest.raises(DomainError):
        c.delay(old + timedelta(days=2), by=STAFF, at=T1, reason="  ")
    with pytest.raises(InvalidTransition):
        c.delay(old, by=STAFF, at=T1, reason="等配件")
    c.delay(old + timedelta(days=2), by=STAFF, at=T1, reason="  等配件 ")
    assert c.resolve_by == old + timedelta(days=2)
    assert c.history[-1].note == "等配件"
    assert c.history[-1].data == {"old_resolve_by": old.isoformat(),
                                  "resolve_by": (old + timedelta(days=2)).isoformat()}


def test_reveal_contact_is_logged_and_impossible_when_anonymous() -> None:
    c = in_status(Status.IN_PROGRESS)
    assert c.contact.masked_phone == "139****5678"
    assert c.reveal_contact(by=STAFF, at=T1) == "13912345678"
    assert c.history[-1].kind is EventKind.CONTACT_REVEALED and c.history[-1].actor_id == STAFF.id
    anonymous = new_complaint(anonymous=True)
    anonymous.assign(1, by=SYSTEM, at=T0)
    with pytest.raises(InvalidTransition) as info:
        anonymous.reveal_contact(by=STAFF, at=T1)
    assert_polite(info.value)


def test_refer_external_needs_a_referral_and_can_then_be_closed() -> None:
    c = in_status(Status.IN_PROGRESS)
    with pytest.raises(DomainError):
        c.refer_external(by=STAFF, at=T1, referral=" ")
    c.refer_external(by=STAFF, at=T1, referral=" 请联系燃气公司 ")
    assert (c.status, c.external_referral) == (Status.EXTERNAL, "请联系燃气公司")
    assert not c.is_open
    c.close(by=SYSTEM, at=T1)
    assert c.status is Status.CLOSED


def test_add_info_needs_content_and_keeps_attachments() -> None:
    c = in_status(Status.ASSIGNED)
    with pytest.raises(DomainError):
        c.add_info(by=RESIDENT, at=T1, text=" ")
    photo = Attachment("photo", "file-1", "漏水处")
    c.add_info(by=RESIDENT, at=T1, attachments=[photo])
    assert c.attachments == [photo] and c.history[-1].data == {"attachments": 1}


def test_withdraw_sets_closed_at() -> None:
    c = in_status(Status.REVIEW)
    c.withdraw(by=RESIDENT, at=T1, note="自己修好了")
    assert (c.status, c.closed_at) == (Status.WITHDRAWN, T1)


def test_overdue_queries() -> None:
    c = in_status(Status.ASSIGNED)
    assert not c.accept_overdue(c.accept_by) and c.accept_overdue(c.accept_by + timedelta(seconds=1))
    assert not c.is_overdue(c.resolve_by) and c.is_overdue(c.resolve_by + timedelta(seconds=1))
    c.accept(by=STAFF, at=T1)
    c.resolve(by=STAFF, at=T1)
    assert not c.is_overdue(c.resolve_by + timedelta(days=1))  # not open any more


# ---- privacy and numbers -------------------------------------------------------------------------
@pytest.mark.parametrize(("phone", "masked"), [
    ("13812345678", "138****5678"),
    ("010-12345678", "010****5678"),
    ("1234567", "*******"),
    ("", None),
    (None, None),
])
def test_mask_phone(phone: str | None, masked: str | None) -> None:
    assert mask_phone(phone) == masked


def test_anonymise_drops_personal_data_but_keeps_statistics() -> None:
    c = new_complaint(emotion=Emotion.ANGRY, channel=Channel.PHONE,
                      location=Location("3", "2", "301", "地库", "3号楼2单元301"),
                      attachments=[Attachment("photo", "f1")])
    c.assign(1, by=SYSTEM, at=T0)
    before = list(c.history)
    c.anonymise(at=T1)
    assert c.contact == Contact() and c.anonymous and c.resident_id is None and c.attachments == []
    assert c.location == Location("3", "2", None, "地库", None)
    assert "删除" in c.text
    # What statistics need survives: category, urgency, status, dates; the history is kept.
    assert (c.category, c.urgency, c.status, c.created_at) == ("maintenance", Urgency.GENERAL,
                                                               Status.ASSIGNED, T0)
    assert c.history[:-1] == before and c.history[-1].kind is EventKind.ANONYMISED
    assert c.history[-1].actor_kind is ActorKind.SYSTEM


@pytest.mark.parametrize(("day", "seq", "number"), [
    (date(2026, 11, 27), 3, "TS20261127-0003"),
    (date(2027, 1, 1), 1, "TS20270101-0001"),
    (date(2026, 11, 27), 12345, "TS20261127-12345"),
])
def test_format_number(day: date, seq: int, number: str) -> None:
    assert format_number(day, seq) == number


def test_labels_are_chinese() -> None:
    for status in Status:
        assert CHINESE.search(status.label)
    for urgency in Urgency:
        assert CHINESE.search(urgency.label)
    for kind in EventKind:
        assert CHINESE.search(EVENT_LABELS[kind]), kind
