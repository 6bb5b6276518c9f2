"""Clocks: the one place "now" comes from, so tests and the sandbox can move time."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo


class SystemClock:
    def __init__(self, tz: tzinfo | str = "Asia/Shanghai") -> None:
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz

    def __call__(self) -> datetime:
        return datetime.now(self.tz)


class ManualClock:
    """A clock that only moves when told to: tests set it, the sandbox fast-forwards it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now
