"""Middlewares for running several bot processes safely, and for a flaky Bot API.

* Each update is taken once: Telegram redelivers webhooks it thinks failed.
* One user's updates run one at a time across processes (PostgreSQL advisory lock).
* Direct replies survive a 429 or a passing 5xx: the request is retried, politely.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject, Update

from storage.locks import UpdateLedger, UserLocks

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def _user_id(update: Update) -> int | None:
    event = update.event if update.event_type != "update" else None
    user = getattr(event, "from_user", None)
    return user.id if user else None


class TakeOnceMiddleware(BaseMiddleware):
    """Outer update middleware: skip updates some process has already taken."""

    def __init__(self, ledger: UpdateLedger) -> None:
        self.ledger = ledger

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        bot: Bot = data["bot"]
        if not await self.ledger.claim(bot.id, event.update_id):
            logger.info("update %s was delivered again; ignored", event.update_id)
            return None
        result = await handler(event, data)
        await self.ledger.done(bot.id, event.update_id)
        return result


class UserLockMiddleware(BaseMiddleware):
    """Outer update middleware: hold the user's cross-process lock while the update runs."""

    def __init__(self, locks: UserLocks) -> None:
        self.locks = locks

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        user_id = _user_id(event)
        if user_id is None or not self.locks.enabled:
            return await handler(event, data)
        async with self.locks.hold(user_id):
            return await handler(event, data)


class RetryRequests(BaseRequestMiddleware):
    """Session middleware: retry a call on 429 (after ``retry_after``) and on 5xx/network errors.

    Long polls are left alone (aiogram's polling loop has its own back-off), and a wait longer
    than ``max_wait`` is not worth holding a resident's reply for: the error goes up instead.
    """

    def __init__(self, attempts: int = 4, max_wait: float = 30.0, base_delay: float = 0.5) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.base_delay = base_delay

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        if isinstance(method, GetUpdates):
            return await make_request(bot, method)
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.attempts or exc.retry_after > self.max_wait:
                    raise
                await asyncio.sleep(exc.retry_after)
            except (TelegramServerError, TelegramNetworkError):
                if attempt == self.attempts:
                    raise
                await asyncio.sleep(min(self.max_wait, self.base_delay * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # pragma: no cover
