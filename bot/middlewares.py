"""Middlewares for running several bot processes safely, and for a flaky Bot API.

* Each update is taken once: Telegram redelivers webhooks it thinks failed.
* One user's updates run one at a time across processes (PostgreSQL advisory lock).
* Direct replies survive a 429 or a passing 5xx: the request is retried, politely.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject, Update

from storage.fsm import SqlFSMStorage
from storage.locks import UpdateLedger, UserLocks

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


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


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    return value


class StripNulMiddleware(BaseMiddleware):
    """Outer update middleware: U+0000 never reaches a handler. Telegram passes it through in
    texts and names, and PostgreSQL refuses it in text columns: the resident got "system busy"
    and the message was lost."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        raw = event.model_dump(exclude_unset=True)
        clean = _without_nul(raw)
        if clean != raw:
            event = Update.model_validate(clean, context={"bot": data["bot"]})
        return await handler(event, data)


class CrossProcessIsolation(BaseEventIsolation):
    """The dispatcher's events isolation: this process's per-user lock, then the user's PostgreSQL
    advisory lock. aiogram takes it before it reads the FSM state, so whichever process gets a
    resident's next update sees the state the previous update left. While both are held, the FSM
    storage reads the user's row once (``SqlFSMStorage.held``): nobody else can write it."""

    def __init__(self, local: BaseEventIsolation, locks: UserLocks, storage: SqlFSMStorage | None = None) -> None:
        self.local = local
        self.locks = locks
        self.storage = storage

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.local.lock(key))
            if self.locks.enabled:
                await stack.enter_async_context(self.locks.hold(key.user_id))
            if self.storage is not None:
                await stack.enter_async_context(self.storage.held(key))
            yield

    async def close(self) -> None:
        await self.local.close()
        await self.locks.close()


class RetryRequests(BaseRequestMiddleware):
    """Session middleware: retry a call on 429 (after ``retry_after``) and on 5xx/network errors.

    Long polls are left alone (aiogram's polling loop has its own back-off), and a wait longer
    than ``max_wait`` is not worth holding a resident's reply for: the error goes up instead.
    """

    # Six tries: with a fifth of calls refused, four lost about one reply in 800 (0.2⁴) and the
    # resident got "system busy" for a message the bot had handled; six lose one in 15 000.
    def __init__(self, attempts: int = 6, max_wait: float = 30.0, base_delay: float = 0.5) -> None:
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
