"""The sandbox clock: real time plus an offset that only ever grows (fast-forward, never rewind).

One instance is shared by the application (deadlines, timers, events) and by the Bot API emulator
(message dates), so everything a person sees in the page agrees on what time it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo


class OffsetClock:
    def __init__(self, tz: tzinfo | str = "Asia/Shanghai", *, now: Callable[[], float] = time.time) -> None:
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.offset = timedelta(0)
        self._now = now  # the real clock underneath; tests pass a fixed one

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self._now(), self.tz) + self.offset

    def timestamp(self) -> float:
        """For the emulator, which counts Unix seconds."""
        return self().timestamp()

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            # Timers and events already written in the "future" would then be out of order.
            raise ValueError("the sandbox clock only moves forward")
        self.offset += delta
        return self()

    def to_next(self, hour: int, minute: int = 0) -> datetime:
        """Move to the next hh:mm local time (today if still ahead, else tomorrow)."""
        now = self()
        target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if target <= now:
            target += timedelta(days=1)
        # A few milliseconds later than the target, so anything due exactly then is due.
        return self.advance(target - now + timedelta(milliseconds=5))
