"""When something must happen later: reminders, missed deadlines, automatic closing.

Pure rules: given a complaint's new events, which timers to set. A timer names its deadline in its
key, so a timer planned twice (two processes, a retried transaction) is stored once, and a timer
whose deadline has since moved (a transfer, a delay) recognises itself as stale when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from complaints.deadlines import DeadlinePolicy
from complaints.model import Complaint, ComplaintEvent, EventKind, Status, Urgency

FOLLOW_UP_SILENCE = timedelta(days=7)  # no answer to 回访 within 7 days: closed automatically
REMIND_FRACTION = 0.75


class TimerKind(StrEnum):
    ACCEPT_REMIND = "accept_remind"
    ACCEPT_DUE = "accept_due"
    RESOLVE_REMIND = "resolve_remind"
    RESOLVE_DUE = "resolve_due"
    RESOLVE_DUE_AGAIN = "resolve_due_again"  # after escalation: the manager hears of a second miss
    FOLLOW_UP_CLOSE = "follow_up_close"
    DAILY_SUMMARY = "daily_summary"


@dataclass(frozen=True)
class TimerSpec:
    kind: TimerKind
    due_at: datetime
    key: str
    data: dict[str, Any] = field(default_factory=dict)


def stamp(moment: datetime) -> int:
    """Deadlines compared as Unix seconds: the same instant whatever time zone it was loaded in."""
    return int(moment.timestamp())


def _key(kind: TimerKind, complaint: Complaint, deadline: datetime, holder: int | None = None) -> str:
    return f"{kind}:{complaint.number}:{holder if holder is not None else '-'}:{stamp(deadline)}"


def second_resolve_deadline(policy: DeadlinePolicy, complaint: Complaint) -> datetime:
    """After a missed resolve deadline the supervisor gets one more window before the manager hears:
    4 hours for an emergency, otherwise one working day."""
    if complaint.urgency is Urgency.EMERGENCY:
        return complaint.resolve_by + timedelta(hours=4)
    day = timedelta(hours=policy.work_end.hour - policy.work_start.hour,
                    minutes=policy.work_end.minute - policy.work_start.minute)
    return policy.add_working_time(complaint.resolve_by, day)


def resolve_window_start(complaint: Complaint) -> datetime:
    """When the current resolve window opened: registration, a delay, or a 复核's fresh deadline.
    A reminder at 75 % of the window counts from here, not from registration (else a review
    accepted days later would be "reminded" at once)."""
    for event in reversed(complaint.history):
        if event.kind is EventKind.DELAYED or (
                event.kind is EventKind.ASSIGNED and "resolve_by" in event.data):
            return event.at
    return complaint.created_at


def plan(complaint: Complaint, events: list[ComplaintEvent], policy: DeadlinePolicy) -> list[TimerSpec]:
    """The timers the new ``events`` call for."""
    specs: list[TimerSpec] = []
    urgency = str(complaint.urgency)
    kinds = {e.kind for e in events}
    holder = complaint.assignee_id
    last = events[-1] if events else None

    if holder is not None and complaint.status in (Status.ASSIGNED, Status.REVIEW) and (
            kinds & {EventKind.ASSIGNED, EventKind.TRANSFERRED}):
        start = last.at if last else complaint.created_at
        deadline = complaint.accept_by if complaint.accept_by > start else start
        remind = policy.remind_at(start, deadline, REMIND_FRACTION, urgency=urgency)
        if remind < deadline:
            specs.append(TimerSpec(TimerKind.ACCEPT_REMIND, remind, _key(TimerKind.ACCEPT_REMIND, complaint, deadline, holder),
                                   {"assignee_id": holder, "deadline": stamp(deadline)}))
        specs.append(TimerSpec(TimerKind.ACCEPT_DUE, deadline, _key(TimerKind.ACCEPT_DUE, complaint, deadline, holder),
                               {"assignee_id": holder, "deadline": stamp(deadline)}))

    if complaint.is_open and kinds & {EventKind.ACCEPTED, EventKind.DELAYED, EventKind.SUBMITTED}:
        deadline = complaint.resolve_by
        remind = policy.remind_at(resolve_window_start(complaint), deadline, REMIND_FRACTION, urgency=urgency)
        specs.append(TimerSpec(TimerKind.RESOLVE_REMIND, remind, _key(TimerKind.RESOLVE_REMIND, complaint, deadline),
                               {"deadline": stamp(deadline)}))
        specs.append(TimerSpec(TimerKind.RESOLVE_DUE, deadline, _key(TimerKind.RESOLVE_DUE, complaint, deadline),
                               {"deadline": stamp(deadline)}))

    if EventKind.RESOLVED in kinds and complaint.status is Status.RESOLVED and complaint.resolved_at:
        due = complaint.resolved_at + FOLLOW_UP_SILENCE
        specs.append(TimerSpec(TimerKind.FOLLOW_UP_CLOSE, due,
                               _key(TimerKind.FOLLOW_UP_CLOSE, complaint, complaint.resolved_at),
                               {"resolved_at": stamp(complaint.resolved_at)}))
    return specs


def is_current(kind: TimerKind, data: dict[str, Any], complaint: Complaint) -> bool:
    """Does a firing timer still describe the complaint as it is now?"""
    if kind in (TimerKind.ACCEPT_REMIND, TimerKind.ACCEPT_DUE):
        return (complaint.status in (Status.ASSIGNED, Status.REVIEW) and complaint.accepted_at is None
                and complaint.assignee_id == data.get("assignee_id"))
    if kind in (TimerKind.RESOLVE_REMIND, TimerKind.RESOLVE_DUE, TimerKind.RESOLVE_DUE_AGAIN):
        return complaint.is_open and data.get("deadline") == stamp(complaint.resolve_by)
    if kind is TimerKind.FOLLOW_UP_CLOSE:
        return (complaint.status is Status.RESOLVED and complaint.resolved_at is not None
                and data.get("resolved_at") == stamp(complaint.resolved_at))
    return True
