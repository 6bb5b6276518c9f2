import logging
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from complaints.calendar import WorkCalendar
from complaints.deadlines import DeadlinePolicy, Deadlines

SH = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "policy.example.toml"


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


@pytest.fixture
def policy() -> DeadlinePolicy:
    return DeadlinePolicy()


# --- the issue's examples ---------------------------------------------------------------------


def test_issue_example_general(policy: DeadlinePolicy) -> None:
    d = policy.compute("general", datetime(2026, 9, 30, 17, 0))
    assert d == Deadlines(accept_by=at(2026, 10, 8, 12), resolve_by=at(2026, 10, 10, 17))


def test_issue_example_important(policy: DeadlinePolicy) -> None:
    d = policy.compute("important", datetime(2026, 9, 30, 17, 0))
    assert d == Deadlines(accept_by=at(2026, 10, 8, 10), resolve_by=at(2026, 10, 15, 17))


def test_issue_example_emergency(policy: DeadlinePolicy) -> None:
    d = policy.compute("emergency", datetime(2026, 9, 30, 17, 0))
    assert d == Deadlines(accept_by=at(2026, 9, 30, 17, 15), resolve_by=at(2026, 10, 1, 17))


def test_strenum_urgency_is_accepted(policy: DeadlinePolicy) -> None:
    class Urgency(StrEnum):
        GENERAL = "general"

    assert policy.compute(Urgency.GENERAL, at(2026, 9, 30, 17)).accept_by == at(2026, 10, 8, 12)
    with pytest.raises(ValueError, match="unknown urgency"):
        policy.compute("urgent", at(2026, 9, 30, 17))


# --- clock start ------------------------------------------------------------------------------


def test_registered_on_sunday(policy: DeadlinePolicy) -> None:
    d = policy.compute("general", at(2026, 3, 15, 10, 30))  # Sunday → clock starts Mon 09:00
    assert d == Deadlines(accept_by=at(2026, 3, 16, 13), resolve_by=at(2026, 3, 19, 9))


def test_registered_before_hours(policy: DeadlinePolicy) -> None:
    d = policy.compute("important", at(2026, 3, 10, 8, 0))  # Tuesday 08:00 → 09:00 same day
    assert d == Deadlines(accept_by=at(2026, 3, 10, 11), resolve_by=at(2026, 3, 19, 9))


def test_registered_after_hours(policy: DeadlinePolicy) -> None:
    d = policy.compute("general", at(2026, 3, 10, 18, 30))  # → Wednesday 09:00
    assert d == Deadlines(accept_by=at(2026, 3, 11, 13), resolve_by=at(2026, 3, 16, 9))


def test_edges_of_working_hours(policy: DeadlinePolicy) -> None:
    # 18:00 is outside [09:00, 18:00): same as 18:30.
    assert policy.compute("general", at(2026, 3, 10, 18)) == policy.compute(
        "general", at(2026, 3, 10, 18, 30)
    )
    assert policy.clock_start(at(2026, 3, 10, 9)) == at(2026, 3, 10, 9)
    # A span used up exactly at 18:00 ends at 18:00 that day.
    assert policy.compute("important", at(2026, 3, 10, 16)).accept_by == at(2026, 3, 10, 18)
    assert policy.compute("important", at(2026, 3, 10, 16, 1)).accept_by == at(2026, 3, 11, 9, 1)


def test_emergency_ignores_working_time(policy: DeadlinePolicy) -> None:
    d = policy.compute("emergency", at(2026, 2, 17, 23, 50))  # night, during 春节
    assert d == Deadlines(accept_by=at(2026, 2, 18, 0, 5), resolve_by=at(2026, 2, 18, 23, 50))


# --- calendar interplay -----------------------------------------------------------------------


def test_spring_festival_makeup_saturday(policy: DeadlinePolicy) -> None:
    d = policy.compute("general", at(2026, 2, 13, 17))  # Friday; Sat 2-14 is a makeup working day
    assert d == Deadlines(accept_by=at(2026, 2, 14, 12), resolve_by=at(2026, 2, 25, 17))


def test_crossing_into_unknown_2027(policy: DeadlinePolicy, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="complaints.calendar")
    g = policy.compute("general", at(2026, 12, 30, 17))
    i = policy.compute("important", at(2026, 12, 30, 17))
    # 2026-12-31, then 2027-01-01 (元旦, fallback) is skipped: 01-04, 01-05 …
    assert g == Deadlines(accept_by=at(2026, 12, 31, 12), resolve_by=at(2027, 1, 5, 17))
    assert i.resolve_by == at(2027, 1, 11, 17)
    assert policy.compute("general", at(2026, 12, 31, 17)).accept_by == at(2027, 1, 4, 12)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "2027" in r.getMessage()]
    assert len(warnings) == 1


def test_override_holiday_to_workday_and_back() -> None:
    cal = WorkCalendar({at(2026, 10, 1).date(): True})
    policy = DeadlinePolicy(calendar=cal)
    assert policy.compute("general", at(2026, 9, 30, 17)).accept_by == at(2026, 10, 1, 12)
    cal.set_override(at(2026, 10, 8).date(), False, "小区停电")
    assert policy.compute("general", at(2026, 10, 1, 17)).resolve_by == at(2026, 10, 12, 17)


# --- time zones -------------------------------------------------------------------------------


def test_naive_and_aware_input(policy: DeadlinePolicy) -> None:
    naive = policy.compute("general", datetime(2026, 9, 30, 17))
    aware_utc = policy.compute("general", datetime(2026, 9, 30, 9, tzinfo=UTC))  # = 17:00 +08
    assert naive == aware_utc
    assert naive.accept_by.tzinfo is not None and naive.accept_by.utcoffset() == timedelta(hours=8)
    # 2026-09-30 17:00 in Moscow is 22:00 in Shanghai: outside working hours.
    moscow = policy.compute("general", datetime(2026, 9, 30, 17, tzinfo=ZoneInfo("Europe/Moscow")))
    assert moscow.accept_by == at(2026, 10, 8, 13)


# --- reminders and reports --------------------------------------------------------------------


def test_remind_at_working_time(policy: DeadlinePolicy) -> None:
    start = at(2026, 9, 30, 17)
    d = policy.compute("general", start)
    # 27 working hours in the window; 75% = 20h15m: 1h on 9-30, 9h 10-08, 9h 10-09, 1h15m 10-10.
    assert policy.remind_at(start, d.resolve_by) == at(2026, 10, 10, 10, 15)
    # accept window: 4 working hours, 3h in → 10-08 11:00
    assert policy.remind_at(start, d.accept_by, urgency="general") == at(2026, 10, 8, 11)


def test_remind_at_wall_clock_for_emergency(policy: DeadlinePolicy) -> None:
    start = at(2026, 9, 30, 17)
    d = policy.compute("emergency", start)
    assert policy.remind_at(start, d.resolve_by, urgency="emergency") == at(2026, 10, 1, 11)
    assert policy.remind_at(start, d.accept_by, 0.5, urgency="emergency") == at(2026, 9, 30, 17, 7, 30)


def test_remind_at_degenerate_windows(policy: DeadlinePolicy) -> None:
    assert policy.remind_at(at(2026, 3, 10, 12), at(2026, 3, 10, 11)) == at(2026, 3, 10, 11)
    # No working time between Saturday morning and Saturday night: remind at the deadline.
    assert policy.remind_at(at(2026, 3, 14, 9), at(2026, 3, 14, 20)) == at(2026, 3, 14, 20)
    with pytest.raises(ValueError):
        policy.remind_at(at(2026, 3, 10, 9), at(2026, 3, 10, 10), 1.5)


def test_working_seconds_between(policy: DeadlinePolicy) -> None:
    assert policy.working_seconds_between(at(2026, 9, 30, 17), at(2026, 10, 8, 12)) == 4 * 3600
    assert policy.working_seconds_between(at(2026, 10, 8, 12), at(2026, 9, 30, 17)) == -4 * 3600
    assert policy.working_seconds_between(at(2026, 3, 14, 9), at(2026, 3, 15, 23)) == 0
    assert policy.working_seconds_between(datetime(2026, 3, 10, 8), datetime(2026, 3, 10, 20)) == 9 * 3600


# --- configuration ----------------------------------------------------------------------------


def test_example_policy_file_is_the_default() -> None:
    assert DeadlinePolicy.from_toml(EXAMPLE) == DeadlinePolicy()
    assert DeadlinePolicy.from_mapping(DeadlinePolicy().to_mapping()) == DeadlinePolicy()


def test_policy_file_overrides(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'work_start = "08:30"\nwork_end = "17:30"\n'
        "[general]\naccept_working_hours = 1.5\nresolve_working_days = 5\n"
        "[emergency]\naccept_minutes = 10\n",
        encoding="utf-8",
    )
    policy = DeadlinePolicy.from_toml(path)
    assert (policy.work_start, policy.work_end) == (time(8, 30), time(17, 30))
    assert policy.emergency_accept == timedelta(minutes=10)
    assert policy.emergency_resolve == timedelta(hours=24)  # untouched default
    d = policy.compute("general", at(2026, 3, 10, 17))
    assert d == Deadlines(accept_by=at(2026, 3, 11, 9, 30), resolve_by=at(2026, 3, 17, 17))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[general]\naccept_hours = 4\n", "general.accept_hours"),
        ("[important]\nresolve_working_days = 0\n", "important.resolve_working_days"),
        ("[important]\nresolve_working_days = 2.5\n", "important.resolve_working_days"),
        ("[emergency]\naccept_minutes = -5\n", "emergency.accept_minutes"),
        ('[emergency]\naccept_minutes = "15"\n', "emergency.accept_minutes"),
        ('work_start = "9am"\n', "work_start"),
        ('work_start = "18:00"\nwork_end = "09:00"\n', "work_start"),
        ('timezone = "Mars/Olympus"\n', "timezone"),
        ("urgent = 1\n", "urgent"),
        ("general = 3\n", "general"),
    ],
)
def test_policy_file_validation(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        DeadlinePolicy.from_toml(path)


def test_policy_file_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("this is = = not toml", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid TOML"):
        DeadlinePolicy.from_toml(path)
