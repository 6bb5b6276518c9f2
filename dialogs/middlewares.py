"""Cross-cutting dialog behaviour: one update at a time per user, flood control, no tracebacks."""

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
from aiogram.types import ErrorEvent, Message, TelegramObject

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
