import logging
from datetime import date, datetime

import pytest

from complaints.calendar import DayInfo, Override, WorkCalendar

FALLBACK_LOGGER = "complaints.calendar"


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar()


def test_plain_weekdays_and_weekend(cal: WorkCalendar) -> None:
    assert cal.is_workday(date(2026, 3, 10))  # Tuesday
    assert not cal.is_workday(date(2026, 3, 14))  # Saturday
    assert not cal.is_workday(date(2026, 3, 15))  # Sunday
    assert cal.day_info(date(2026, 3, 14)) == DayInfo(date(2026, 3, 14), False, "official", None)


def test_spring_festival_2026_with_makeup_days(cal: WorkCalendar) -> None:
    # State Council 2026: 春节 2-15 (Sun) … 2-23 (Mon) off; Saturdays 2-14 and 2-28 are worked (调休).
    for day in range(15, 24):
        assert not cal.is_workday(date(2026, 2, day)), day
    assert cal.is_workday(date(2026, 2, 14))
    assert cal.is_workday(date(2026, 2, 28))
    assert cal.is_workday(date(2026, 2, 24))
    assert cal.day_info(date(2026, 2, 16)).note == "春节"
    makeup = cal.day_info(date(2026, 2, 14))
    assert makeup.source == "official" and makeup.note is not None and "调休" in makeup.note
    assert cal.next_workday(date(2026, 2, 14)) == date(2026, 2, 24)


def test_national_day_2026(cal: WorkCalendar) -> None:
    assert [d.day for d in cal.workdays(date(2026, 10, 1), date(2026, 10, 12))] == [8, 9, 10, 12]
    assert cal.day_info(date(2026, 10, 1)).note == "国庆节"


def test_next_workday_and_add_workdays(cal: WorkCalendar) -> None:
    assert cal.next_workday(date(2026, 9, 30)) == date(2026, 10, 8)
    assert cal.next_workday(date(2026, 10, 8), include_today=True) == date(2026, 10, 8)
    assert cal.next_workday(date(2026, 10, 11), include_today=True) == date(2026, 10, 12)
    assert cal.add_workdays(date(2026, 9, 30), 3) == date(2026, 10, 10)
    with pytest.raises(ValueError):
        cal.add_workdays(date(2026, 9, 30), 0)


def test_unknown_year_falls_back_and_warns_once(cal: WorkCalendar, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=FALLBACK_LOGGER)
    info = cal.day_info(date(2027, 1, 1))
    assert info == DayInfo(date(2027, 1, 1), False, "fallback", "元旦")
    assert cal.is_workday(date(2027, 1, 4))  # Monday
    assert not cal.is_workday(date(2027, 1, 9))  # Saturday
    assert not cal.is_workday(date(2027, 10, 1))  # 国庆节, statutory
    cal.month(2027, 2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "2027" in r.getMessage()]
    assert len(warnings) == 1


def test_never_raises_for_far_dates(cal: WorkCalendar) -> None:
    for d in (date(1, 1, 1), date(1990, 6, 1), date(2100, 1, 1), date(9999, 12, 31)):
        assert cal.day_info(d).source == "fallback"


def test_override_holiday_into_workday_and_back() -> None:
    cal = WorkCalendar({date(2026, 10, 5): Override(True, "值班日")})
    assert cal.day_info(date(2026, 10, 5)) == DayInfo(date(2026, 10, 5), True, "override", "值班日")
    assert cal.next_workday(date(2026, 9, 30)) == date(2026, 10, 5)
    cal.clear_override(date(2026, 10, 5))
    assert not cal.is_workday(date(2026, 10, 5))


def test_override_workday_into_holiday_invalidates_cache(cal: WorkCalendar) -> None:
    assert cal.is_workday(date(2026, 10, 8))  # cached now
    cal.set_override(date(2026, 10, 8), False, "停水检修")
    assert cal.day_info(date(2026, 10, 8)) == DayInfo(date(2026, 10, 8), False, "override", "停水检修")
    assert cal.next_workday(date(2026, 9, 30)) == date(2026, 10, 9)


def test_overrides_enter_the_official_schedule_for_an_unknown_year(cal: WorkCalendar) -> None:
    # The administrator enters 2027's makeup day (hypothetical) and an extra holiday.
    cal2 = cal.with_overrides({date(2027, 1, 2): (True, "调休上班"), date(2027, 1, 4): False})
    assert cal2.is_workday(date(2027, 1, 2)) and cal2.day_info(date(2027, 1, 2)).source == "override"
    assert not cal2.is_workday(date(2027, 1, 4))
    assert not cal.is_workday(date(2027, 1, 2))  # the original calendar is unchanged
    assert set(cal2.overrides) == {date(2027, 1, 2), date(2027, 1, 4)}


def test_datetime_argument_is_treated_as_its_date(cal: WorkCalendar) -> None:
    cal.set_override(date(2026, 3, 14), True)
    assert cal.is_workday(datetime(2026, 3, 14, 10, 30))


def test_month_listing(cal: WorkCalendar) -> None:
    days = cal.month(2026, 2)
    assert [d.date.day for d in days] == list(range(1, 29))
    assert sum(d.is_workday for d in days) == 16  # 20 weekdays − 6 festival weekdays + 2 makeup Saturdays
    with pytest.raises(ValueError):
        cal.month(2026, 13)
