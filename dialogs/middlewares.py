"""Cross-cutting dialog behaviour: one update at a time per user, flood control, no tracebacks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import ErrorEvent, Message, TelegramObject, Update

from dialogs import texts

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def _user_id(event: TelegramObject) -> int | None:
    if isinstance(event, Update):
        inner = event.message or event.callback_query or event.edited_message
        user = getattr(inner, "from_user", None)
        return user.id if user else None
    user = getattr(event, "from_user", None)
    return user.id if user else None


class PerUserSerialMiddleware(BaseMiddleware):
    """Updates of one user are handled one after another, in order (an album, fast taps).

    asyncio.Lock wakes waiters first-in first-out, and polling creates the update tasks in
    update order, so the order is kept. Locks of idle users are dropped.
    """

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = defaultdict(int)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user_id = _user_id(event)
        if user_id is None:
            return await handler(event, data)
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        self._waiting[user_id] += 1
        try:
            async with lock:
                return await handler(event, data)
        finally:
            self._waiting[user_id] -= 1
            if self._waiting[user_id] == 0:
                del self._waiting[user_id]
                self._locks.pop(user_id, None)


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
