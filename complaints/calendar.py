"""Working-day calendar for the People's Republic of China.

Order of truth for a date:

1. administrator overrides (``wuye calendar set``; loaded from the database by the storage layer);
2. the ``chinese_calendar`` package, which knows the State Council schedule including makeup
   working days (调休) for the years it was released for;
3. a fallback for any other year: Monday–Friday less the statutory holidays the ``holidays``
   package computes for China. A warning is logged once per year (per calendar family) so an
   administrator knows to enter the official schedule, which is published late in the year.

The calendar never raises for a date: a missing or broken data source degrades to the fallback.
"""

from __future__ import annotations

import calendar as _stdcal
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, NamedTuple

import chinese_calendar
import holidays

logger = logging.getLogger(__name__)

Source = Literal["override", "official", "fallback"]


class Override(NamedTuple):
    """An administrator's decision for one date. A plain ``(is_workday, note)`` tuple works too."""

    is_workday: bool
    note: str | None = None


@dataclass(frozen=True, slots=True)
class DayInfo:
    date: date
    is_workday: bool
    source: Source
    note: str | None = None


OverrideInput = Mapping[date, bool | Override | tuple[bool, str | None]]


def _as_date(d: date) -> date:
    # datetime is a subclass of date; a datetime key would never hit the cache or the overrides.
    return d.date() if isinstance(d, datetime) else d


def _normalize(overrides: OverrideInput | None) -> dict[date, Override]:
    result: dict[date, Override] = {}
    for d, value in (overrides or {}).items():
        if isinstance(value, bool):
            result[_as_date(d)] = Override(value)
        else:
            is_workday, note = value
            result[_as_date(d)] = Override(bool(is_workday), note)
    return result


def _official_note(name: str | None, is_workday: bool) -> str | None:
    """Chinese name of the holiday from chinese_calendar's English one (e.g. "Spring Festival" → 春节)."""
    if name is None:
        return None
    try:
        chinese = chinese_calendar.Holiday(name).chinese
    except ValueError:  # a name this version of the enum does not list: keep the English one
        chinese = name
    # A named working day is a makeup day (调休上班), typically a Saturday or Sunday.
    return f"{chinese}（调休上班）" if is_workday else chinese


class WorkCalendar:
    """Answers "is this a working day?" for any date, with per-date caching.

    Not meant to be shared across threads while overrides are being changed.
    """

    def __init__(self, overrides: OverrideInput | None = None) -> None:
        self._overrides: dict[date, Override] = _normalize(overrides)
        self._cache: dict[date, DayInfo] = {}
        # Shared with calendars derived by with_overrides() so the fallback warning stays once per year.
        self._fallback_holidays: dict[int, dict[date, str]] = {}
        self._warned_years: set[int] = set()

    # --- overrides -----------------------------------------------------------------------------

    @property
    def overrides(self) -> Mapping[date, Override]:
        """A copy of the administrator overrides currently in effect."""
        return dict(self._overrides)

    def with_overrides(self, overrides: OverrideInput) -> WorkCalendar:
        """A new calendar with these overrides added to (and winning over) the current ones."""
        new = WorkCalendar({**self._overrides, **_normalize(overrides)})
        new._fallback_holidays = self._fallback_holidays
        new._warned_years = self._warned_years
        return new

    def set_override(self, d: date, is_workday: bool, note: str | None = None) -> None:
        d = _as_date(d)
        self._overrides[d] = Override(bool(is_workday), note)
        self._cache.pop(d, None)

    def clear_override(self, d: date) -> None:
        """Forget the administrator's decision for ``d``; the official/fallback answer applies again."""
        d = _as_date(d)
        self._overrides.pop(d, None)
        self._cache.pop(d, None)

    # --- queries -------------------------------------------------------------------------------

    def is_workday(self, d: date) -> bool:
        return self.day_info(d).is_workday

    def day_info(self, d: date) -> DayInfo:
        d = _as_date(d)
        info = self._cache.get(d)
        if info is None:
            info = self._cache[d] = self._lookup(d)
        return info

    def month(self, year: int, month: int) -> list[DayInfo]:
        """Every day of the month in order (for ``wuye calendar show YYYY-MM``)."""
        days = _stdcal.monthrange(year, month)[1]  # raises ValueError for month outside 1..12
        return [self.day_info(date(year, month, day)) for day in range(1, days + 1)]

    def next_workday(self, d: date, *, include_today: bool = False) -> date:
        """The first working day after ``d`` (or ``d`` itself if ``include_today`` and it is one)."""
        d = _as_date(d)
        if not include_today:
            d += timedelta(days=1)
        # Terminates: overrides are finite and every source has working days within a few weeks.
        while not self.is_workday(d):
            d += timedelta(days=1)
        return d

    def add_workdays(self, d: date, n: int) -> date:
        """The ``n``-th working day after ``d`` (``n`` ≥ 1); ``d`` itself is not counted."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        for _ in range(n):
            d = self.next_workday(d)
        return d

    def workdays(self, start: date, end: date) -> Iterable[date]:
        """Working days in ``[start, end]``."""
        d = _as_date(start)
        end = _as_date(end)
        while d <= end:
            if self.is_workday(d):
                yield d
            d += timedelta(days=1)

    # --- sources -------------------------------------------------------------------------------

    def _lookup(self, d: date) -> DayInfo:
        override = self._overrides.get(d)
        if override is not None:
            return DayInfo(d, override.is_workday, "override", override.note)
        try:
            is_workday = chinese_calendar.is_workday(d)
            _, name = chinese_calendar.get_holiday_detail(d)
        except NotImplementedError:  # year outside the package's data (e.g. 2027 in 1.11.0)
            return self._fallback(d)
        except Exception:  # must never raise for a date: any data problem degrades to the fallback
            logger.exception("chinese_calendar failed for %s; using the fallback", d)
            return self._fallback(d)
        return DayInfo(d, is_workday, "official", _official_note(name, is_workday))

    def _fallback(self, d: date) -> DayInfo:
        year_holidays = self._fallback_year(d.year)
        name = year_holidays.get(d)
        is_workday = d.weekday() < 5 and name is None
        return DayInfo(d, is_workday, "fallback", name)

    def _fallback_year(self, year: int) -> dict[date, str]:
        known = self._fallback_holidays.get(year)
        if known is not None:
            return known
        try:
            # observed=False: only the fixed statutory days; the package's guesses at the State
            # Council's moved days (调休) are not official, the administrator enters those.
            found = holidays.country_holidays("CN", years=year, observed=False, language="zh_CN")
            known = {day: str(name) for day, name in found.items()}
        except Exception:
            logger.exception("holidays package failed for %d; using plain Monday–Friday", year)
            known = {}
        self._fallback_holidays[year] = known
        if year not in self._warned_years:
            self._warned_years.add(year)
            logger.warning(
                "No official working-day schedule for %d: using Monday–Friday less statutory holidays. "
                "Enter the State Council schedule (调休) with `wuye calendar set` when it is published.",
                year,
            )
        return known
