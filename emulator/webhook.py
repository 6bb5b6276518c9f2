"""Webhook delivery, the way Telegram does it: POST each update to the bot's URL until it is
answered 2xx, several at a time but one chat's updates in order, and (on request) the occasional
redelivery of an update that had already succeeded — which a bot must ignore.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

if TYPE_CHECKING:
    from .state import BotAccount

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def acceptable_url(url: str) -> bool:
    """Telegram demands HTTPS; the emulator also takes plain HTTP on this machine's loopback."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)


def _chat_of(update: dict[str, Any]) -> int | None:
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        chat = value.get("chat") or (value.get("message") or {}).get("chat")
        if chat:
            return int(chat["id"])
        sender = value.get("from")
        if sender:
            return int(sender["id"])
    return None


class WebhookDelivery:
    """One bot's delivery loop; started by setWebhook, stopped by deleteWebhook or shutdown."""

    def __init__(self, bot: BotAccount, url: str, *, secret_token: str | None, max_connections: int = 40,
                 retry_delay: float = 0.2, duplicate_probability: float = 0.0, seed: int | None = 0) -> None:
        self.bot = bot
        self.url = url
        self.secret_token = secret_token
        self.max_connections = max(1, min(max_connections, 100))
        self.retry_delay = retry_delay
        self.duplicate_probability = duplicate_probability
        self.rng = random.Random(seed)
        self.delivered = 0
        self.failures = 0
        self.duplicates = 0
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[int] = set()  # update ids being posted
        self._busy_chats: set[int] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"webhook-{self.bot.id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def _next_batch(self) -> list[dict[str, Any]]:
        """Pending updates that may go now: not in flight, and not behind a busy chat."""
        batch: list[dict[str, Any]] = []
        blocked = set(self._busy_chats)
        for update in self.bot.updates:
            if len(self._in_flight) + len(batch) >= self.max_connections:
                break
            chat = _chat_of(update)
            if update["update_id"] in self._in_flight or (chat is not None and chat in blocked):
                if chat is not None:
                    blocked.add(chat)  # keep the chat's order: nothing overtakes an earlier update
                continue
            batch.append(update)
            if chat is not None:
                blocked.add(chat)
        return batch

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            pending: set[asyncio.Task[None]] = set()
            try:
                while True:
                    for update in self._next_batch():
                        self._in_flight.add(update["update_id"])
                        chat = _chat_of(update)
                        if chat is not None:
                            self._busy_chats.add(chat)
                        task = asyncio.create_task(self._post(session, update, chat))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    # Woken by a new update or a finished post; the timeout is only a safety net.
                    with contextlib.suppress(TimeoutError):
                        await self.bot.updates_changed.wait(0.5)
            finally:
                for task in pending:
                    task.cancel()

    async def _post(self, session: aiohttp.ClientSession, update: dict[str, Any], chat: int | None) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.secret_token} if self.secret_token else {}
        try:
            while True:
                try:
                    async with session.post(self.url, json=update, headers=headers) as response:
                        ok = 200 <= response.status < 300
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    break
                self.failures += 1
                await asyncio.sleep(self.retry_delay)
            self.delivered += 1
            if self.duplicate_probability and self.rng.random() < self.duplicate_probability:
                # Telegram sometimes sends an update again although the bot answered it.
                self.duplicates += 1
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.post(self.url, json=update, headers=headers):
                        pass
            with contextlib.suppress(ValueError):
                self.bot.updates.remove(update)
        finally:
            self._in_flight.discard(update["update_id"])
            if chat is not None:
                self._busy_chats.discard(chat)
            self.bot.updates_changed.notify()
