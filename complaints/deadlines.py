"""Deadline policy: when a complaint must be accepted and resolved.

Rules (defaults from the procedures, overridable by the administrator's policy file):

* Working time is working hours (default 09:00–18:00, Asia/Shanghai) on working days
  (see :class:`complaints.calendar.WorkCalendar`).
* Emergency deadlines run on the wall clock: accept within 15 minutes, resolve within 24 hours.
* Important and general deadlines run on working time: accept within 2 / 4 working hours; resolve at
  the same clock time on the 7th / 3rd working day after the clock starts. The clock starts at
  registration, or at the next start of working time if registered outside it.

Edge choices:

* Working hours are the half-open interval ``[work_start, work_end)``: registered at 18:00 exactly
  is outside working time, so the clock starts at 09:00 on the next working day. Registered at
  09:00 exactly is inside and the clock starts at once.
* A working-time span that is used up exactly at ``work_end`` ends at ``work_end`` that day
  (e.g. 17:00 + 1 working hour → 18:00 the same day, not 09:00 the next working day): the earliest
  moment at which that much working time has passed.
* Naive input datetimes are local time in the policy's timezone; aware ones are converted. Every
  returned datetime is aware, in the policy's timezone.
* Working-time arithmetic is done on local wall-clock times (correct for Asia/Shanghai, which has
  no DST); emergency wall-clock arithmetic is done in UTC so it is exact in any zone.
* Urgency is a plain string ("emergency" | "important" | "general"); ``Urgency`` StrEnum members
  compare equal to these. Anything else raises ``ValueError``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from complaints.calendar import WorkCalendar

EMERGENCY = "emergency"
IMPORTANT = "important"
GENERAL = "general"
URGENCIES = (EMERGENCY, IMPORTANT, GENERAL)


@dataclass(frozen=True)
class Deadlines:
    accept_by: datetime
    resolve_by: datetime


def uses_working_time(urgency: str) -> bool:
    """True if this urgency's deadlines run on working time, False if on the wall clock."""
    _check_urgency(urgency)
    return urgency != EMERGENCY


def _check_urgency(urgency: str) -> None:
    if urgency not in URGENCIES:
        raise ValueError(f"unknown urgency {urgency!r}; expected one of {', '.join(URGENCIES)}")


@dataclass(frozen=True)
class DeadlinePolicy:
    """Deadline rules plus the calendar they run on. Immutable; derive variants with ``replace``."""

    timezone: str = "Asia/Shanghai"
    work_start: time = time(9, 0)
    work_end: time = time(18, 0)
    emergency_accept: timedelta = timedelta(minutes=15)  # wall clock
    emergency_resolve: timedelta = timedelta(hours=24)  # wall clock
    important_accept: timedelta = timedelta(hours=2)  # working time
    important_resolve_workdays: int = 7
    general_accept: timedelta = timedelta(hours=4)  # working time
    general_resolve_workdays: int = 3
    calendar: WorkCalendar = field(default_factory=WorkCalendar, compare=False, repr=False)
    _tz: ZoneInfo = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from exc
        object.__setattr__(self, "_tz", tz)  # frozen dataclass: cache the zone once
        if not self.work_start < self.work_end:
            raise ValueError(
                f"work_start/work_end: working hours must start before they end "
                f"(got {self.work_start:%H:%M}–{self.work_end:%H:%M})"
            )
        for name in ("emergency_accept", "emergency_resolve", "important_accept", "general_accept"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name}: must be positive")
        for name in ("important_resolve_workdays", "general_resolve_workdays"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a whole number of working days ≥ 1, got {value!r}")

    # --- configuration -------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | Path, calendar: WorkCalendar | None = None) -> DeadlinePolicy:
        """Load a policy file (see ``config/policy.example.toml``); missing keys keep their defaults."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from exc
        try:
            return cls.from_mapping(data, calendar)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], calendar: WorkCalendar | None = None) -> DeadlinePolicy:
        """Build a policy from the policy-file structure; raises ``ValueError`` naming the bad key.

        Structure (every key optional)::

            timezone = "Asia/Shanghai"
            work_start = "09:00"
            work_end = "18:00"
            [emergency]  accept_minutes = 15, resolve_hours = 24        # wall clock
            [important]  accept_working_hours = 2, resolve_working_days = 7
            [general]    accept_working_hours = 4, resolve_working_days = 3
        """
        kwargs: dict[str, Any] = {}
        sections = {
            EMERGENCY: {"accept_minutes": ("emergency_accept", "minutes"),
                        "resolve_hours": ("emergency_resolve", "hours")},
            IMPORTANT: {"accept_working_hours": ("important_accept", "hours"),
                        "resolve_working_days": ("important_resolve_workdays", "days")},
            GENERAL: {"accept_working_hours": ("general_accept", "hours"),
                      "resolve_working_days": ("general_resolve_workdays", "days")},
        }  # fmt: skip
        for key, value in data.items():
            if key == "timezone":
                if not isinstance(value, str):
                    raise ValueError(f"timezone: expected a string like 'Asia/Shanghai', got {value!r}")
                kwargs["timezone"] = value
            elif key in ("work_start", "work_end"):
                kwargs[key] = _parse_time(key, value)
            elif key in sections:
                if not isinstance(value, Mapping):
                    raise ValueError(f"{key}: expected a table [{key}]")
                for sub, sub_value in value.items():
                    spec = sections[key].get(sub)
                    if spec is None:
                        allowed = ", ".join(sections[key])
                        raise ValueError(f"{key}.{sub}: unknown key (allowed: {allowed})")
                    attr, unit = spec
                    kwargs[attr] = _parse_amount(f"{key}.{sub}", sub_value, unit)
            else:
                allowed = ", ".join(["timezone", "work_start", "work_end", *sections])
                raise ValueError(f"{key}: unknown key (allowed: {allowed})")
        if calendar is not None:
            kwargs["calendar"] = calendar
        return cls(**kwargs)

    def with_calendar(self, calendar: WorkCalendar) -> DeadlinePolicy:
        return replace(self, calendar=calendar)

    def to_mapping(self) -> dict[str, Any]:
        """The policy-file structure for this policy (round-trips through ``from_mapping``)."""
        return {
            "timezone": self.timezone,
            "work_start": f"{self.work_start:%H:%M}",
            "work_end": f"{self.work_end:%H:%M}",
            EMERGENCY: {"accept_minutes": self.emergency_accept / timedelta(minutes=1),
                        "resolve_hours": self.emergency_resolve / timedelta(hours=1)},
            IMPORTANT: {"accept_working_hours": self.important_accept / timedelta(hours=1),
                        "resolve_working_days": self.important_resolve_workdays},
            GENERAL: {"accept_working_hours": self.general_accept / timedelta(hours=1),
                      "resolve_working_days": self.general_resolve_workdays},
        }  # fmt: skip

    # --- deadlines -----------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    def compute(self, urgency: str, registered_at: datetime) -> Deadlines:
        _check_urgency(urgency)
        registered = self.to_local(registered_at)
        if urgency == EMERGENCY:
            return Deadlines(
                accept_by=self._wall_add(registered, self.emergency_accept),
                resolve_by=self._wall_add(registered, self.emergency_resolve),
            )
        if urgency == IMPORTANT:
            accept, workdays = self.important_accept, self.important_resolve_workdays
        else:
            accept, workdays = self.general_accept, self.general_resolve_workdays
        start = self.clock_start(registered)
        resolve_day = self.calendar.add_workdays(start.date(), workdays)
        return Deadlines(
            accept_by=self.add_working_time(start, accept),
            # Same clock time as the clock start; the start is inside working hours, so this is too.
            resolve_by=datetime.combine(resolve_day, start.timetz()),
        )

    def remind_at(
        self, start: datetime, deadline: datetime, fraction: float = 0.75, *, urgency: str = GENERAL
    ) -> datetime:
        """The moment ``fraction`` of the window ``start → deadline`` has passed.

        Measured in working time for working-time urgencies (important, general) and on the wall
        clock for emergency. Never later than ``deadline``.
        """
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
        start, deadline = self.to_local(start), self.to_local(deadline)
        if deadline <= start:
            return deadline
        if not uses_working_time(urgency):
            return self._wall_add(start, (deadline - start) * fraction)
        total = self.working_seconds_between(start, deadline)
        moment = self.add_working_time(start, timedelta(seconds=total * fraction))
        # A window with no working time in it (both ends outside working hours) reminds at the end.
        return min(moment, deadline)

    # --- working-time arithmetic ---------------------------------------------------------------

    def to_local(self, dt: datetime) -> datetime:
        """Aware datetime in the policy timezone; naive input is taken as local time already."""
        if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
            return dt.replace(tzinfo=self._tz)
        return dt.astimezone(self._tz)

    def is_working_time(self, dt: datetime) -> bool:
        local = self.to_local(dt)
        return self.calendar.is_workday(local.date()) and self.work_start <= local.time() < self.work_end

    def clock_start(self, dt: datetime) -> datetime:
        """``dt`` if it is working time, else the next start of working time."""
        local = self.to_local(dt)
        if self.is_working_time(local):
            return local
        day = local.date()
        if not (self.calendar.is_workday(day) and local.time() < self.work_start):
            day = self.calendar.next_workday(day)
        return datetime.combine(day, self.work_start, tzinfo=self._tz)

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment ``amount`` of working time after ``start`` has passed (rolling over days)."""
        if amount < timedelta(0):
            raise ValueError("amount must not be negative")
        t = self.clock_start(start)
        while True:
            day_end = datetime.combine(t.date(), self.work_end, tzinfo=self._tz)
            available = day_end - t
            if amount <= available:  # '<=': a span used up exactly at work_end ends that day
                return t + amount
            amount -= available
            t = datetime.combine(self.calendar.next_workday(t.date()), self.work_start, tzinfo=self._tz)

    def working_seconds_between(self, a: datetime, b: datetime) -> float:
        """Working seconds from ``a`` to ``b``; negative if ``b`` is before ``a``.

        E.g. ``working_seconds_between(deadline, closed_at) > 0`` means closed late by that much.
        """
        a, b = self.to_local(a), self.to_local(b)
        if b < a:
            return -self.working_seconds_between(b, a)
        total = 0.0
        day = a.date()
        while day <= b.date():
            if self.calendar.is_workday(day):
                lo = max(a, datetime.combine(day, self.work_start, tzinfo=self._tz))
                hi = min(b, datetime.combine(day, self.work_end, tzinfo=self._tz))
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def _wall_add(self, dt: datetime, amount: timedelta) -> datetime:
        # In UTC so that elapsed time is exact even across a DST change in a configured zone.
        return (dt.astimezone(UTC) + amount).astimezone(self._tz)


def _parse_time(key: str, value: Any) -> time:
    if isinstance(value, time):  # TOML local time literal, e.g. work_start = 09:00:00
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f'{key}: expected a time like "09:00", got {value!r}')


def _parse_amount(key: str, value: Any, unit: str) -> timedelta | int:
    if unit == "days":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key}: expected a whole number of working days ≥ 1, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise ValueError(f"{key}: expected a positive number of {unit}, got {value!r}")
    try:
        return timedelta(**{unit: value})
    except OverflowError as exc:
        raise ValueError(f"{key}: {value!r} {unit} is too large") from exc


__all__ = [
    "EMERGENCY",
    "GENERAL",
    "IMPORTANT",
    "URGENCIES",
    "DeadlinePolicy",
    "Deadlines",
    "uses_working_time",
]
