"""Cross-cutting dialog behaviour: one update at a time per user, who is writing (looked up once
per update), flood control, no tracebacks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any

from aiogram import BaseMiddleware
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import ErrorEvent, Message, TelegramObject, User

from complaints.people import Resident, Staff
from complaints.services import RosterService
from dialogs import texts

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class PerUserIsolation(BaseEventIsolation):
    """Updates of one user are handled one after another, in order (an album, fast typing, taps).

    This is the dispatcher's ``events_isolation``: aiogram takes the lock in its FSM middleware
    *before* reading the state, so a message that arrives while the previous one is still being
    handled sees the state that one left (a middleware further in would see a stale state, and
    "5栋3单元801" typed quickly would start a new complaint instead of answering the question).
    It is also the first await of an update, and asyncio.Lock wakes waiters first-in first-out,
    so updates keep the order polling created them in. Locks of idle users are dropped.
    """

    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._waiting: dict[Hashable, int] = defaultdict(int)

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        # Per person in a chat: the bot, chat and user, not the thread or destiny.
        who = (key.bot_id, key.chat_id, key.user_id)
        lock = self._locks.setdefault(who, asyncio.Lock())
        self._waiting[who] += 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[who] -= 1
            if self._waiting[who] == 0:
                del self._waiting[who]
                self._locks.pop(who, None)

    async def close(self) -> None:
        self._locks.clear()
        self._waiting.clear()


class Person:
    """The Telegram user behind one update as the roster knows them, read once per update.

    The staff filter and the handlers ask for ``staff()`` / ``resident()`` as often as they like;
    the first question reads both records in one transaction. Nothing outlives the update, so a
    staff invite, a /join or a removal (from any process) counts from the next update on.
    """

    def __init__(self, roster: RosterService, user: User) -> None:
        self.roster, self.user = roster, user
        self._loaded = False
        self._staff: Staff | None = None
        self._resident: Resident | None = None

    async def _load(self) -> None:
        if not self._loaded:
            self._staff, self._resident = await self.roster.person_for_telegram(self.user.id)
            self._loaded = True

    async def staff(self) -> Staff | None:
        """The active staff record, or None."""
        await self._load()
        return self._staff

    async def resident(self) -> Resident:
        """The resident record, created on first contact (as ``RosterService.resident_for_telegram``)."""
        await self._load()
        if self._resident is None:
            self._resident = await self.roster.resident_for_telegram(self.user.id, self.user.full_name)
        return self._resident


class PersonMiddleware(BaseMiddleware):
    """Outer update middleware: hands every handler and filter ``person`` (lazy: no read until asked)."""

    def __init__(self, roster: RosterService) -> None:
        self.roster = roster

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = data.get("event_from_user")
        if user is not None:
            data["person"] = Person(self.roster, user)
        return await handler(event, data)


class FloodControlMiddleware(BaseMiddleware):
    """More than ``limit`` messages in ``window`` seconds: say so once and skip the rest."""

    def __init__(self, limit: int = 20, window: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._seen: dict[int, deque[float]] = defaultdict(deque)
        self._warned: dict[int, float] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Message) or event.from_user is None:
            return await handler(event, data)
        user_id, now = event.from_user.id, self.clock()
        seen = self._seen[user_id]
        while seen and now - seen[0] > self.window:
            seen.popleft()
        seen.append(now)
        if len(seen) <= self.limit:
            return await handler(event, data)
        if now - self._warned.get(user_id, -1e9) > self.window:
            self._warned[user_id] = now
            await event.answer(texts.TOO_FAST)
        return None


async def on_error(event: ErrorEvent) -> bool:
    """Whatever broke, the person gets a polite answer and the log gets the traceback."""
    logger.exception("update %s failed", event.update.update_id, exc_info=event.exception)
    update = event.update
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(texts.SYSTEM_BUSY, show_alert=True)
        elif update.message is not None:
            await update.message.answer(texts.SYSTEM_BUSY)
    except Exception:  # the Bot API itself may be what failed
        logger.warning("could not tell the user about the failure", exc_info=True)
    return True
