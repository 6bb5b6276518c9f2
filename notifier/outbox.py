"""The outbox delivery worker: every queued Telegram call is sent once, in order, within the limits.

Producers write an ``outbox`` row in the same transaction as the change that caused it (so a
message exists if and only if the change was committed) and may call :meth:`OutboxWorker.notify`
after the commit to have it sent at once instead of at the next poll.

Payload contract (``OutboxRow.method`` / ``OutboxRow.payload``; build them with :func:`message`,
:func:`photo`, :func:`document`, :func:`media_group`)::

    sendMessage     {"text": str, "parse_mode"?: "HTML" (default; null = plain text),
                     "reply_markup"?: dict (Telegram JSON), "disable_notification"?: bool}
    sendPhoto       {"photo": file_id, "caption"?: str, "parse_mode"?: "HTML", "reply_markup"?: dict}
    sendDocument    {"document_b64": base64 of the bytes, "filename": str, "caption"?: str, "parse_mode"?}
                    or {"document": file_id, "caption"?: str}
    sendMediaGroup  {"media": [{"type": "photo", "media": file_id, "caption"?: str}, …]}  (2–10 items)

Delivery (:class:`OutboxWorker`):

* Claiming. Due ``pending`` rows are claimed (status ``sending``, ``claimed_by``, ``claimed_until``)
  and committed *before* anything is sent, then sent outside any transaction, then the outcome is
  committed. Only the oldest undelivered row of a chat is ever claimable, and a chat with a live
  claim is skipped, so one chat's messages go out in id order and never overtake one another,
  even while one of them waits for a retry. On PostgreSQL the candidates are selected
  ``FOR UPDATE SKIP LOCKED`` (two processes never pick the same row, nor wait for each other); on
  SQLite, whose single writer serialises the claim, a conditional ``UPDATE … WHERE status =
  'pending' …`` does. Both re-check every condition in the claiming UPDATE itself.
* Crashes. A row left in ``sending`` after its ``claimed_until`` (the process died mid-send) is
  claimed again: delivery is at-least-once. A duplicate is possible only if the process dies
  between Telegram's answer and the commit of ``sent`` (or the request times out after Telegram
  accepted it); the request timeout is kept below the claim TTL so a slow send is never re-sent by
  another worker while it is still in flight.
* Outcomes. 429 ``retry_after``: the row waits that long (not counted as an attempt) and the worker
  stops *all* sending until then, because Telegram's flood control is per bot. 5xx, network errors
  and timeouts: exponential backoff 1 s, 2 s, 4 s … (capped at 5 min, with up to 25 % jitter),
  ``failed`` after ``max_attempts``. 403: the row and the chat's other pending rows become
  ``unreachable`` and ``on_unreachable(chat_id)`` is called once. 400 and other permanent errors:
  ``failed`` with ``last_error``, never retried; the chat's next messages still go.
  A group that became a supergroup (``migrate_to_chat_id``) has the row moved to the new chat id.
* Limits (:mod:`notifier.ratelimit`): ≤ 30 messages/s overall (an album counts each item),
  ≤ 1/s per chat, ≤ 20/min per group, per worker process (give N processes ``30 // N`` each).
  aiogram 3.31's session never retries or sleeps on its own: a 429 is raised as
  ``TelegramRetryAfter`` straight to us (``BaseSession.check_response``; no retrying request
  middleware is installed by default), so the limits hold as long as nobody registers one on the
  bot given to the worker.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendDocument, SendMediaGroup, SendMessage, SendPhoto, SendVideo, TelegramMethod
from aiogram.types import (
    BufferedInputFile,
    ForceReply,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from pydantic import BaseModel, ValidationError
from sqlalchemy import and_, exists, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from notifier.ratelimit import Permit, RateLimiter, RateLimits
from storage.repositories import SqlOutbox
from storage.tables import OutboxRow

__all__ = [
    "OutboxWorker",
    "RateLimits",
    "build_method",
    "document",
    "enqueue",
    "media_group",
    "message",
    "method_for",
    "photo",
]

logger = logging.getLogger(__name__)

OUTBOX = OutboxRow.__table__
PENDING, SENDING, SENT, FAILED, UNREACHABLE = "pending", "sending", "sent", "failed", "unreachable"
BACKOFF_CAP = 300.0
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply


# ---------------------------------------------------------------------------------- payloads
def _markup_json(markup: Markup | dict[str, Any] | None) -> dict[str, Any] | None:
    if markup is None or isinstance(markup, dict):
        return markup
    return markup.model_dump(mode="json", exclude_none=True)


def message(text: str, reply_markup: Markup | dict[str, Any] | None = None, *,
            parse_mode: str | None = "HTML", disable_notification: bool | None = None) -> dict[str, Any]:
    """A ``sendMessage`` payload (HTML by default: escape user text with ``html.escape``)."""
    payload: dict[str, Any] = {"text": text, "parse_mode": parse_mode}
    if reply_markup is not None:
        payload["reply_markup"] = _markup_json(reply_markup)
    if disable_notification is not None:
        payload["disable_notification"] = disable_notification
    return payload


def photo(file_id: str, caption: str | None = None, reply_markup: Markup | dict[str, Any] | None = None,
          ) -> dict[str, Any]:
    payload: dict[str, Any] = {"photo": file_id}
    if caption is not None:
        payload["caption"] = caption
    if reply_markup is not None:
        payload["reply_markup"] = _markup_json(reply_markup)
    return payload


def document(data: bytes | None = None, filename: str = "file", *, file_id: str | None = None,
             caption: str | None = None) -> dict[str, Any]:
    """A ``sendDocument`` payload: new bytes (stored base64 in the row) or a known ``file_id``."""
    if (data is None) == (file_id is None):
        raise ValueError("give either data or file_id")
    payload: dict[str, Any] = ({"document": file_id} if file_id is not None else
                               {"document_b64": base64.b64encode(data or b"").decode("ascii"),
                                "filename": filename})
    if caption is not None:
        payload["caption"] = caption
    return payload


def media_group(file_ids: Sequence[str], caption: str | None = None) -> dict[str, Any]:
    """An album of photos (``sendMediaGroup``); the caption goes on the first one."""
    media: list[dict[str, Any]] = [{"type": "photo", "media": fid} for fid in file_ids]
    if caption is not None and media:
        media[0]["caption"] = caption
    return {"media": media}


def method_for(payload: dict[str, Any]) -> str:
    """The Bot API method a payload is meant for, from its keys."""
    if "media" in payload:
        return "sendMediaGroup"
    if "document" in payload or "document_b64" in payload:
        return "sendDocument"
    if "photo" in payload:
        return "sendPhoto"
    if "video" in payload:
        return "sendVideo"
    if "text" in payload:
        return "sendMessage"
    raise ValueError(f"can't tell the method of payload with keys {sorted(payload)}")


def _parse_markup(data: dict[str, Any] | None) -> Markup | None:
    if data is None:
        return None
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.model_validate(data)
    if "keyboard" in data:
        return ReplyKeyboardMarkup.model_validate(data)
    if "remove_keyboard" in data:
        return ReplyKeyboardRemove.model_validate(data)
    if "force_reply" in data:
        return ForceReply.model_validate(data)
    raise ValueError(f"unknown reply_markup with keys {sorted(data)}")


_MEDIA_TYPES: dict[str, type[BaseModel]] = {
    "photo": InputMediaPhoto, "video": InputMediaVideo, "document": InputMediaDocument,
    "audio": InputMediaAudio,
}


def build_method(chat_id: int, method: str, payload: dict[str, Any]) -> TelegramMethod[Any]:
    """The aiogram call for an outbox row; ValueError/ValidationError if the payload is malformed."""
    # The contract's default is HTML; an explicit null means plain text.
    parse_mode = payload.get("parse_mode", "HTML")
    if method == "sendMessage":
        extra = {"disable_notification": payload["disable_notification"]} \
            if "disable_notification" in payload else {}
        return SendMessage(chat_id=chat_id, text=payload["text"], parse_mode=parse_mode,
                           reply_markup=_parse_markup(payload.get("reply_markup")), **extra)
    if method == "sendPhoto":
        return SendPhoto(chat_id=chat_id, photo=payload["photo"], caption=payload.get("caption"),
                         parse_mode=parse_mode, reply_markup=_parse_markup(payload.get("reply_markup")))
    if method == "sendVideo":
        return SendVideo(chat_id=chat_id, video=payload["video"], caption=payload.get("caption"),
                         parse_mode=parse_mode, reply_markup=_parse_markup(payload.get("reply_markup")))
    if method == "sendDocument":
        if "document_b64" in payload:
            try:
                data = base64.b64decode(payload["document_b64"], validate=True)
            except binascii.Error as exc:
                raise ValueError("document_b64 is not valid base64") from exc
            file: Any = BufferedInputFile(data, filename=payload.get("filename") or "file")
        else:
            file = payload["document"]
        return SendDocument(chat_id=chat_id, document=file, caption=payload.get("caption"),
                            parse_mode=parse_mode)
    if method == "sendMediaGroup":
        media = []
        for item in payload["media"]:
            kind = _MEDIA_TYPES.get(item.get("type", ""))
            if kind is None:
                raise ValueError(f"unsupported media type {item.get('type')!r}")
            fields = {k: v for k, v in item.items() if k != "type"}
            if "caption" in fields:
                fields.setdefault("parse_mode", parse_mode)
            media.append(kind.model_validate(fields))
        return SendMediaGroup(chat_id=chat_id, media=media)
    raise ValueError(f"unsupported outbox method {method!r}")


def _weight(method: str, payload: dict[str, Any]) -> int:
    # An album is one call but several messages as far as Telegram's limits go.
    if method == "sendMediaGroup":
        return max(1, len(payload.get("media") or ()))
    return 1


async def enqueue(target: SqlOutbox | AsyncSession | Any, chat_id: int, payload: dict[str, Any], *,
                  at: datetime | None = None, method: str | None = None,
                  dedup_key: str | None = None) -> None:
    """Queue one call in the caller's transaction (a SqlOutbox, an AsyncSession or a unit of work).

    The payload is checked now, so a malformed one fails its producer, not the worker later."""
    method = method or method_for(payload)
    build_method(chat_id, method, payload)
    if isinstance(target, SqlOutbox):
        outbox = target
    elif isinstance(target, AsyncSession):
        outbox = SqlOutbox(target)
    else:
        outbox = target.outbox
    await outbox.add(chat_id, payload, at=at or datetime.now(UTC), method=method, dedup_key=dedup_key)


# ---------------------------------------------------------------------------------- the worker
def _dead_local_worker(owner: str, me: str) -> bool:
    """``owner`` (``host:pid``) is this worker's earlier life, or a process of this host that is gone."""
    if owner == me:
        return True  # we have claimed nothing yet: it was a previous process with our id
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


@dataclass
class Claimed:
    id: int
    chat_id: int
    method: str
    payload: dict[str, Any]
    attempts: int  # including this one


@dataclass
class Outcome:
    status: str  # sent | pending (retry) | failed | unreachable | migrated
    error: str | None = None
    retry_after: float | None = None
    migrate_to: int | None = None


class OutboxWorker:
    """Delivers the outbox. Several workers (processes) may run over one database; each needs its
    own ``worker_id`` (e.g. ``f"{hostname}:{pid}"``): outcomes are recorded only under our claim."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bot: Bot,
        clock: Callable[[], datetime],
        *,
        worker_id: str,
        limits: RateLimits = RateLimits(),
        on_unreachable: Callable[[int], Awaitable[None]] | None = None,
        claim_ttl: timedelta = timedelta(seconds=60),
        max_attempts: int = 10,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        idle_interval: float = 1.0,
        tick: float = 0.01,
        batch_limit: int | None = None,
    ) -> None:
        self.sessions = sessions
        self.bot = bot
        self.clock = clock
        self.worker_id = worker_id
        self.on_unreachable = on_unreachable
        self.claim_ttl = claim_ttl
        self.max_attempts = max_attempts
        self.limiter = RateLimiter(limits, monotonic)
        self.rng = rng or random.Random()
        self.idle_interval = idle_interval
        self.tick = tick
        self.batch_limit = batch_limit or limits.global_per_second
        # An answer must come well before the claim expires, or a second worker could re-send it.
        self.request_timeout = max(1, int(claim_ttl.total_seconds() / 2))
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        # What the last round left behind, so the loop knows how long it may sleep:
        self._capacity_limited = False  # due rows beyond the global window or the batch size
        self._waiting_chats: set[int] = set()  # chats with (possibly) due rows held back by their windows
        self._outcomes: list[tuple[Claimed, Outcome, asyncio.Future[bool]]] = []
        self._flushing = False

    # ---- producers
    def notify(self) -> None:
        """Something was committed to the outbox: look now rather than at the next poll."""
        self._wake.set()

    # ---- the loop
    async def release_dead_claims(self) -> int:
        """Rows a killed process of this machine left in ``sending`` are due again now, instead of
        when their claim expires (a minute of silence after every crash or ``kill -9``).

        A claim is dead when it carries our own worker id (a previous life of this process, e.g.
        pid 1 in a restarted container) or ``host:pid`` of this host whose process is gone.
        Claims of other machines still wait for ``claimed_until``."""
        o = OUTBOX.c
        async with self.sessions() as session, session.begin():
            owners = (await session.execute(
                select(o.claimed_by).where(o.status == SENDING).distinct())).scalars().all()
            dead = [owner for owner in owners if owner and _dead_local_worker(owner, self.worker_id)]
            if not dead:
                return 0
            result = await session.execute(
                update(OUTBOX).where(o.status == SENDING, o.claimed_by.in_(dead))
                .values(status=PENDING, claimed_by=None, claimed_until=None))
        logger.warning("outbox: %s row(s) claimed by dead worker(s) %s are due again", result.rowcount, dead)
        return result.rowcount or 0

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        try:
            await self.release_dead_claims()
        except Exception:  # the database may be down at start-up: the claims expire anyway
            logger.exception("outbox worker %s: could not release dead claims", self.worker_id)
        while not stop.is_set():
            try:
                await self.run_once()
                failures = 0
                delay = self._sleep_hint()
            except Exception:  # the database or the network is down: keep trying, slower
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                logger.exception("outbox worker %s: round failed, retrying in %.1f s", self.worker_id, delay)
            await self._idle(delay, stop)

    def _sleep_hint(self) -> float:
        """Until the next moment a claim can succeed; rows that just became due or were just
        queued are picked up at the next idle poll or at once on :meth:`notify`."""
        if self.limiter.paused_for() > 0:
            return self.limiter.paused_for()
        hints = [self.idle_interval]
        if self._capacity_limited:
            hints.append(self.limiter.global_wait())
        chats = self.limiter.chats_wait(self._waiting_chats)
        if chats is not None:
            hints.append(max(chats, self.limiter.global_wait()))
        # A small floor: a timer that fires a hair early must not turn into a busy loop.
        return max(self.tick, min(hints))

    async def _idle(self, delay: float, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim what is due and allowed by the limits, deliver it, record the outcomes.
        Returns how many rows were sent."""
        async with self._lock:  # one round at a time: the limiter's arithmetic relies on it
            capacity = min(self.limiter.capacity(), self.batch_limit)
            if capacity <= 0:
                self._capacity_limited = True
                return 0
            rows = await self._claim(capacity)
            if not rows:
                return 0
            # Those chats' next messages may go as soon as their windows allow.
            self._waiting_chats.update(r.chat_id for r in rows)
            permits = [self.limiter.acquire(r.chat_id, _weight(r.method, r.payload)) for r in rows]
            results = await asyncio.gather(*(self._deliver(r, p) for r, p in zip(rows, permits, strict=True)))
            return sum(results)

    # ---- claiming
    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        o = OUTBOX.c
        due = and_(o.status == PENDING, o.not_before <= now)
        abandoned = and_(o.status == SENDING, o.claimed_until < now)  # its worker died mid-send
        other = OUTBOX.alias("other")
        c = other.c
        # Anything older still undelivered, or a live claim in the chat, goes first.
        ahead = exists().where(
            c.chat_id == o.chat_id, c.id != o.id,
            or_(and_(c.id < o.id, c.status.in_((PENDING, SENDING))),
                and_(c.status == SENDING, c.claimed_until >= now)))
        return and_(or_(due, abandoned), not_(ahead))

    async def _claim(self, capacity: int) -> list[Claimed]:
        now = self.clock()
        blocked = self.limiter.blocked_chats()  # also forgets chats whose windows are empty
        o = OUTBOX.c
        async with self.sessions() as session, session.begin():
            # At most one candidate per chat: room for the chats our windows hold back, whose rows
            # are read (not claimed) so the loop knows whether to wake up for them.
            query = (select(o.id, o.chat_id, o.method, o.payload).where(self._claimable(now))
                     .order_by(o.id).limit(capacity + len(blocked) + 10))
            if session.bind.dialect.name == "postgresql":
                # Rows another worker is claiming are skipped, not waited for.
                query = query.with_for_update(skip_locked=True, of=OUTBOX)
            candidates = (await session.execute(query)).all()
            self._capacity_limited = len(candidates) > capacity + len(blocked)
            self._waiting_chats = set()
            chosen: list[int] = []
            chats: set[int] = set()
            room = capacity
            for row in candidates:
                weight = _weight(row.method, row.payload)
                if row.chat_id in chats or not self.limiter.chat_allows(row.chat_id, weight):
                    self._waiting_chats.add(row.chat_id)
                    continue
                if weight > room:
                    self._capacity_limited = True
                    continue
                chats.add(row.chat_id)
                chosen.append(row.id)
                room -= weight
                if room <= 0:
                    self._capacity_limited = True
                    break
            if not chosen:
                return []
            # The same conditions again, atomically with the write: on SQLite the SELECT above ran
            # before this transaction took the write lock and may be stale.
            claimed = (await session.execute(
                update(OUTBOX)
                .where(o.id.in_(chosen), self._claimable(now))
                .values(status=SENDING, claimed_by=self.worker_id, claimed_until=now + self.claim_ttl,
                        attempts=o.attempts + 1)
                .returning(o.id, o.chat_id, o.method, o.payload, o.attempts))).all()
        return sorted((Claimed(r.id, r.chat_id, r.method, r.payload, r.attempts) for r in claimed),
                      key=lambda r: r.id)

    # ---- sending
    async def _deliver(self, row: Claimed, permit: Permit) -> int:
        try:
            outcome = await self._send(row)
        finally:
            self.limiter.release(permit)
        if outcome.retry_after is not None:
            self.limiter.pause(outcome.retry_after)
        try:
            recorded = await self._record(row, outcome)
        except Exception:
            # The claim expires and the row is tried again: at-least-once.
            logger.exception("outbox %s: could not record %s", row.id, outcome.status)
            return 1 if outcome.status == SENT else 0
        if recorded and outcome.status == UNREACHABLE and self.on_unreachable is not None:
            try:
                await self.on_unreachable(row.chat_id)
            except Exception:
                logger.exception("outbox: on_unreachable(%s) failed", row.chat_id)
        return 1 if outcome.status == SENT else 0

    async def _send(self, row: Claimed) -> Outcome:
        try:
            call = build_method(row.chat_id, row.method, row.payload)
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            logger.error("outbox %s: malformed %s payload: %s", row.id, row.method, exc)
            return Outcome(FAILED, f"malformed payload: {exc!r}")
        try:
            await self.bot(call, request_timeout=self.request_timeout)
        except TelegramRetryAfter as exc:
            logger.warning("outbox %s: flood control, retry after %s s", row.id, exc.retry_after)
            return Outcome(PENDING, f"429: {exc.message}", retry_after=float(exc.retry_after))
        except TelegramForbiddenError as exc:
            logger.info("outbox %s: chat %s unreachable: %s", row.id, row.chat_id, exc.message)
            return Outcome(UNREACHABLE, f"403: {exc.message}")
        except TelegramMigrateToChat as exc:
            return Outcome("migrated", f"migrated: {exc.message}", migrate_to=exc.migrate_to_chat_id)
        except (TelegramBadRequest, TelegramNotFound, TelegramConflictError, TelegramEntityTooLarge) as exc:
            if isinstance(exc, TelegramBadRequest) and "chat not found" in exc.message.lower():
                # A wrong or deleted account: nobody will ever read it, like a 403.
                return Outcome(UNREACHABLE, f"400: {exc.message}")
            # The request itself is wrong: sending it again can't help.
            logger.error("outbox %s: %s rejected for chat %s: %s", row.id, row.method, row.chat_id, exc.message)
            return Outcome(FAILED, f"{type(exc).__name__}: {exc.message}")
        except (TelegramServerError, TelegramNetworkError, TelegramAPIError, TimeoutError) as exc:
            # 5xx, timeouts, connection errors, anything else Telegram-shaped: try again later.
            logger.warning("outbox %s: attempt %s failed: %s", row.id, row.attempts, exc)
            return Outcome(PENDING, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # an undecodable answer, a client bug: retried, bounded by max_attempts
            logger.exception("outbox %s: attempt %s failed unexpectedly", row.id, row.attempts)
            return Outcome(PENDING, f"{type(exc).__name__}: {exc}")
        return Outcome(SENT)

    def backoff(self, attempts: int) -> float:
        """Seconds before try ``attempts + 1``: 1, 2, 4 … capped at 5 minutes, plus ≤ 25 % jitter."""
        base = min(BACKOFF_CAP, 2.0 ** max(0, attempts - 1))
        return min(BACKOFF_CAP, base * (1 + 0.25 * self.rng.random()))

    # ---- recording
    async def _record(self, row: Claimed, outcome: Outcome) -> bool:
        """Commit one outcome; False if our claim was lost. Outcomes finishing while a commit is
        under way are committed together in the next one (a group commit): SQLite has one writer
        and 30 concurrent little transactions would spend their time waiting for its lock."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outcomes.append((row, outcome, future))
        if not self._flushing:
            self._flushing = True
            try:
                while self._outcomes:
                    batch, self._outcomes = self._outcomes, []
                    try:
                        async with self.sessions() as session, session.begin():
                            results = await self._write_all(session, [(r, oc) for r, oc, _ in batch])
                    except BaseException as exc:
                        # Nobody may wait forever: the claims expire and the rows are tried again.
                        for _, _, fut in batch:
                            fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                        if not isinstance(exc, Exception):
                            raise
                    else:
                        for (_, _, fut), result in zip(batch, results, strict=True):
                            fut.set_result(result)
            finally:
                self._flushing = False
        return await future

    async def _write_all(self, session: AsyncSession, batch: list[tuple[Claimed, Outcome]]) -> list[bool]:
        # Deliveries, the common case, in one statement; the rest one by one.
        sent_ids = [row.id for row, outcome in batch if outcome.status == SENT]
        recorded: set[int] = set()
        if sent_ids:
            o = OUTBOX.c
            result = await session.execute(
                update(OUTBOX)
                .where(o.id.in_(sent_ids), o.status == SENDING, o.claimed_by == self.worker_id)
                .values(status=SENT, sent_at=self.clock(), last_error=None, claimed_by=None, claimed_until=None)
                .returning(o.id))
            recorded = set(result.scalars().all())
            for lost in set(sent_ids) - recorded:
                logger.warning("outbox %s: claim lost before recording sent", lost)
        return [row.id in recorded if outcome.status == SENT else await self._write(session, row, outcome)
                for row, outcome in batch]

    async def _write(self, session: AsyncSession, row: Claimed, outcome: Outcome) -> bool:
        now = self.clock()
        o = OUTBOX.c
        mine = and_(o.id == row.id, o.status == SENDING, o.claimed_by == self.worker_id)
        released = {"claimed_by": None, "claimed_until": None}
        if outcome.status == SENT:
            values: dict[str, Any] = {"status": SENT, "sent_at": now, "last_error": None, **released}
        elif outcome.retry_after is not None:
            # Flood control is not the message's fault: the attempt is given back.
            values = {"status": PENDING, "attempts": o.attempts - 1, "last_error": outcome.error,
                      "not_before": now + timedelta(seconds=outcome.retry_after), **released}
        elif outcome.status == "migrated":
            values = {"status": PENDING, "attempts": o.attempts - 1, "chat_id": outcome.migrate_to,
                      "last_error": outcome.error, "not_before": now, **released}
        elif outcome.status == PENDING and row.attempts < self.max_attempts:
            values = {"status": PENDING, "last_error": outcome.error,
                      "not_before": now + timedelta(seconds=self.backoff(row.attempts)), **released}
        elif outcome.status == PENDING:
            logger.error("outbox %s: giving up after %s attempts: %s", row.id, row.attempts, outcome.error)
            values = {"status": FAILED, "last_error": outcome.error, **released}
        else:
            values = {"status": outcome.status, "last_error": outcome.error, **released}
        result = await session.execute(update(OUTBOX).where(mine).values(**values))
        if result.rowcount == 0:
            # Our claim expired and another worker took the row: it now decides the outcome.
            logger.warning("outbox %s: claim lost before recording %s", row.id, outcome.status)
            return False
        if outcome.status == UNREACHABLE:
            # Everything else queued for that person would bounce too.
            await session.execute(
                update(OUTBOX).where(o.chat_id == row.chat_id, o.status == PENDING)
                .values(status=UNREACHABLE, last_error=outcome.error))
        return True

