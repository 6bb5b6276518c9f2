"""Telegram's sending limits as sliding windows on an injectable monotonic clock.

Telegram asks bots to stay under 30 messages per second overall, 1 per second in one chat and
20 per minute in one group. A :class:`Window` allows at most ``limit`` sends in any ``period``
seconds *as Telegram sees them*: a send occupies its window from the moment it starts until
``period`` seconds after it completed (the request reaches Telegram somewhere in between), so
slow answers can never let two bursts land in one window.

The limits are per worker process: N processes sending for one bot should each be given
``RateLimits(global_per_second=30 // N)``. Per-chat spacing holds across processes only as far as
the outbox claim does (one row per chat in flight at a time).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimits:
    global_per_second: int = 30
    per_chat_interval: float = 1.0
    group_per_minute: int = 20


def is_group(chat_id: int) -> bool:
    # Groups, supergroups and channels have negative ids; private chats positive ones.
    return chat_id < 0


class Window:
    """At most ``limit`` sends in any ``period`` seconds; an in-flight send counts until it ends."""

    def __init__(self, limit: int, period: float) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a window needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self.in_flight = 0
        self._done: deque[float] = deque()  # completion times, oldest first

    def _prune(self, now: float) -> None:
        while self._done and self._done[0] <= now - self.period:
            self._done.popleft()

    def free(self, now: float) -> int:
        self._prune(now)
        return max(0, self.limit - self.in_flight - len(self._done))

    def start(self, n: int = 1) -> None:
        self.in_flight += n

    def finish(self, now: float, n: int = 1) -> None:
        self.in_flight = max(0, self.in_flight - n)
        # Completions arrive in any order when sends run concurrently; keep the deque sorted.
        if not self._done or self._done[-1] <= now:
            self._done.extend([now] * n)
        else:
            self._done = deque(sorted([*self._done, *([now] * n)]))

    def next_free_at(self, now: float) -> float | None:
        """When a slot frees up: ``now`` if one is free, None if only in-flight sends hold it."""
        if self.free(now) > 0:
            return now
        if not self._done:
            return None
        return self._done[0] + self.period

    def idle(self, now: float) -> bool:
        self._prune(now)
        return self.in_flight == 0 and not self._done


class Permit:
    """One granted send; :meth:`RateLimiter.release` it when the request has been answered."""

    __slots__ = ("chat_id", "weight", "released")

    def __init__(self, chat_id: int, weight: int) -> None:
        self.chat_id = chat_id
        self.weight = weight
        self.released = False


class RateLimiter:
    """The global, per-chat and per-group windows of one worker, plus the flood-control pause."""

    def __init__(self, limits: RateLimits = RateLimits(),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.monotonic = monotonic
        self.global_window = Window(limits.global_per_second, 1.0)
        self._chats: dict[int, Window] = {}
        self._groups: dict[int, Window] = {}
        self.paused_until = float("-inf")

    # ---- flood control: Telegram's 429 applies to the whole bot, not to one chat
    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.monotonic() + seconds)

    def paused_for(self) -> float:
        return max(0.0, self.paused_until - self.monotonic())

    # ---- asking
    def _chat_window(self, chat_id: int) -> Window:
        window = self._chats.get(chat_id)
        if window is None:
            # "1 per interval" is a window of one send: the next starts an interval after the last ended.
            window = self._chats[chat_id] = Window(1, self.limits.per_chat_interval)
        return window

    def _group_window(self, chat_id: int) -> Window:
        window = self._groups.get(chat_id)
        if window is None:
            window = self._groups[chat_id] = Window(self.limits.group_per_minute, 60.0)
        return window

    def capacity(self) -> int:
        """How many sends may start now overall (0 while paused)."""
        if self.paused_for() > 0:
            return 0
        return self.global_window.free(self.monotonic())

    def chat_allows(self, chat_id: int, weight: int = 1) -> bool:
        now = self.monotonic()
        if self._chat_window(chat_id).free(now) < 1:
            return False
        return not is_group(chat_id) or self._group_window(chat_id).free(now) >= weight

    def blocked_chats(self) -> list[int]:
        """Chats that may not be sent to now; forgets chats whose windows are empty."""
        now = self.monotonic()
        blocked: set[int] = set()
        for windows in (self._chats, self._groups):
            for chat_id, window in list(windows.items()):
                if window.idle(now):
                    del windows[chat_id]
                elif window.free(now) < 1:
                    blocked.add(chat_id)
        return sorted(blocked)

    # ---- taking and giving back
    def acquire(self, chat_id: int, weight: int = 1) -> Permit:
        """Take a permit (the caller checked :meth:`capacity` and :meth:`chat_allows`).

        ``weight`` is how many messages the call produces (an album of 5 photos counts 5)."""
        self.global_window.start(weight)
        self._chat_window(chat_id).start(1)
        if is_group(chat_id):
            self._group_window(chat_id).start(weight)
        return Permit(chat_id, weight)

    def release(self, permit: Permit) -> None:
        if permit.released:
            return
        permit.released = True
        now = self.monotonic()
        self.global_window.finish(now, permit.weight)
        self._chat_window(permit.chat_id).finish(now, 1)
        if is_group(permit.chat_id):
            self._group_window(permit.chat_id).finish(now, permit.weight)

    def global_wait(self) -> float:
        """Seconds until a send may start as far as the pause and the global window go."""
        now = self.monotonic()
        if self.paused_until > now:
            return self.paused_until - now
        at = self.global_window.next_free_at(now)
        return 0.0 if at is None else max(0.0, at - now)

    def chats_wait(self, chat_ids: Iterable[int]) -> float | None:
        """Seconds until the first of ``chat_ids`` may be sent to again (None: not while their
        sends are still in flight, or no chats given)."""
        now = self.monotonic()
        moments: list[float] = []
        for chat_id in chat_ids:
            windows = [self._chats.get(chat_id)]
            if is_group(chat_id):
                windows.append(self._groups.get(chat_id))
            # A chat is free when all of its windows are.
            frees = [w.next_free_at(now) if w is not None else now for w in windows]
            if all(f is not None for f in frees):
                moments.append(max(f for f in frees if f is not None))
        return max(0.0, min(moments) - now) if moments else None
