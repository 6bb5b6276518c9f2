"""The outbox worker against the Bot API emulator, on SQLite and PostgreSQL.

Time is fake: the worker's monotonic clock (rate limits, flood-control pause) and the emulator's
clock are one :class:`Mono`, and the app's ManualClock (not_before, claims) moves with it, so the
transcript's call times are exactly the times the worker's limits were computed on.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy import func, insert, select, text, update

from bot.container import App
from complaints.clock import ManualClock
from emulator import BotAPIEmulator
from emulator.media import make_png
from emulator.state import CallRecord
from notifier.outbox import (
    OutboxWorker,
    RateLimits,
    document,
    enqueue,
    media_group,
    message,
    photo,
)
from notifier.ratelimit import RateLimiter
from storage.tables import OutboxRow


class Mono:
    """A monotonic clock that moves only when told (shared by the worker and the emulator)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Clocks:
    def __init__(self, clock: ManualClock, mono: Mono) -> None:
        self.clock, self.mono = clock, mono

    def advance(self, seconds: float) -> None:
        self.mono.now += seconds
        self.clock.advance(timedelta(seconds=seconds))


@pytest.fixture
def clocks(clock: ManualClock, bot_emulator: BotAPIEmulator) -> Clocks:
    mono = Mono()
    bot_emulator.clock = mono  # transcript times are the worker's monotonic times
    return Clocks(clock, mono)


@pytest.fixture
async def bot(bot_emulator: BotAPIEmulator) -> AsyncIterator[Bot]:
    b = bot_emulator.make_bot()
    try:
        yield b
    finally:
        await b.session.close()


def make_worker(app: App, bot: Bot, clocks: Clocks, worker_id: str = "w1", **kwargs: Any) -> OutboxWorker:
    return OutboxWorker(app.sessions, bot, app.clock, worker_id=worker_id, monotonic=clocks.mono,
                        rng=random.Random(0), **kwargs)


async def queue(app: App, *items: tuple[int, dict[str, Any]]) -> None:
    async with app.sessions() as session, session.begin():
        for chat_id, payload in items:
            await enqueue(session, chat_id, payload, at=app.clock())


async def bulk_queue(app: App, items: list[tuple[int, dict[str, Any]]]) -> None:
    """Many rows in one executemany (one INSERT per row is what makes big tests slow)."""
    now = app.clock()
    async with app.sessions() as session, session.begin():
        await session.execute(insert(OutboxRow), [
            {"chat_id": chat, "method": "sendMessage", "payload": payload, "status": "pending",
             "attempts": 0, "not_before": now, "created_at": now} for chat, payload in items])


async def rows(app: App) -> list[OutboxRow]:
    async with app.sessions() as session:
        return list((await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all())


async def undelivered(app: App) -> int:
    async with app.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxRow)
                                        .where(OutboxRow.status.in_(("pending", "sending")))) or 0)


async def drain(worker: OutboxWorker, clocks: Clocks, app: App, *, step: float = 0.25,
                max_steps: int = 2_000) -> None:
    """Run rounds, moving fake time by ``step`` after each, until nothing is pending or sending."""
    for _ in range(max_steps):
        if not await worker.run_once() and not await undelivered(app):
            return
        clocks.advance(step)
    raise AssertionError("outbox did not drain")


def sends(emu: BotAPIEmulator, method: str = "sendMessage") -> list[CallRecord]:
    return emu.calls(method)


def chat_of(call: CallRecord) -> int:
    return int(call.params["chat_id"])


async def started(emu: BotAPIEmulator, *user_ids: int) -> None:
    for user_id in user_ids:
        await emu.user(user_id).start()  # the emulator answers 403 to users who never pressed START


# ------------------------------------------------------------------------------ delivery
async def test_delivers_each_chat_in_order(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                           clocks: Clocks) -> None:
    await started(bot_emulator, 1, 2)
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="好", callback_data="ok")]])
    await queue(app, *[(chat, message(f"{chat}-{i}", keyboard if i == 0 else None))
                       for i in range(5) for chat in (1, 2)])
    worker = make_worker(app, bot, clocks)

    assert await worker.run_once() == 2  # only the oldest message of each chat at a time
    await drain(worker, clocks, app)

    for chat in (1, 2):
        texts = [c.params["text"] for c in sends(bot_emulator) if chat_of(c) == chat]
        assert texts == [f"{chat}-{i}" for i in range(5)]
    first = sends(bot_emulator)[0]
    assert first.params["parse_mode"] == "HTML"
    assert first.params["reply_markup"] == {"inline_keyboard": [[{"text": "好", "callback_data": "ok"}]]}
    assert all(r.status == "sent" and r.sent_at is not None and r.claimed_by is None for r in await rows(app))


async def test_photo_document_and_album_payloads(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                 clocks: Clocks) -> None:
    await started(bot_emulator, 1)
    pics = [bot_emulator.store_file(make_png(8, 8), "photo").file_id for _ in range(2)]
    await queue(app, (1, photo(pics[0], "现场照片")), (1, document("报表".encode(), "报表.txt", caption="月报")),
                (1, document(file_id=pics[1])), (1, media_group(pics, "两张")))
    await drain(make_worker(app, bot, clocks), clocks, app)

    assert [c.method for c in bot_emulator.transcript if c.ok and c.method != "getUpdates"] == \
        ["sendPhoto", "sendDocument", "sendDocument", "sendMediaGroup"]
    assert [f["filename"] for f in sends(bot_emulator, "sendDocument")[0].files.values()] == ["报表.txt"]


async def test_enqueue_checks_payload_and_dedups(app: App) -> None:
    with pytest.raises(ValueError):
        await queue(app, (1, {"nothing": "here"}))
    async with app.sessions() as session, session.begin():
        for _ in range(2):
            await enqueue(session, 1, message("提醒"), at=app.clock(), dedup_key="remind:1")
    assert len(await rows(app)) == 1


# ------------------------------------------------------------------------------ failures
async def test_retry_after_pauses_everything_until_it_passes(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                             clocks: Clocks) -> None:
    await started(bot_emulator, 1, 2)
    await queue(app, (1, message("a")), (1, message("b")))
    bot_emulator.faults.retry_after("sendMessage", 5)
    worker = make_worker(app, bot, clocks)

    assert await worker.run_once() == 0
    limited_at = sends(bot_emulator)[0].time
    assert sends(bot_emulator)[0].status == 429
    await queue(app, (2, message("other chat")))  # flood control is per bot: this one waits too
    for _ in range(19):
        clocks.advance(0.25)
        assert await worker.run_once() == 0
    assert len(sends(bot_emulator)) == 1  # nothing was tried before retry_after passed

    await drain(worker, clocks, app)
    calls = sends(bot_emulator)
    assert [c.params["text"] for c in calls] in (["a", "a", "other chat", "b"], ["a", "other chat", "a", "b"])
    assert all(c.time >= limited_at + 5 for c in calls[1:])
    assert [r.attempts for r in await rows(app)] == [1, 1, 1]  # the 429 was not counted


async def test_server_errors_are_retried_with_backoff(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                      clocks: Clocks) -> None:
    await started(bot_emulator, 1)
    await queue(app, (1, message("first")), (1, message("second")))
    bot_emulator.faults.server_error("sendMessage", 502, times=3)
    worker = make_worker(app, bot, clocks)

    assert await worker.run_once() == 0
    (row, _) = await rows(app)
    assert row.status == "pending" and row.attempts == 1 and "Bad Gateway" in (row.last_error or "")
    assert 1.0 <= (row.not_before - app.clock()).total_seconds() <= 1.25

    await drain(worker, clocks, app)
    calls = sends(bot_emulator)
    assert [(c.params["text"], c.status) for c in calls] == \
        [("first", 502), ("first", 502), ("first", 502), ("first", 200), ("second", 200)]
    gaps = [b.time - a.time for a, b in zip(calls, calls[1:4], strict=False)]
    assert [1, 2, 4] <= gaps <= [1.25, 2.5, 5.0]  # 1 s, 2 s, 4 s (+ jitter), "second" never overtook
    assert [r.attempts for r in await rows(app)] == [4, 1]


async def test_server_errors_forever_fail_after_max_attempts(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                             clocks: Clocks) -> None:
    await started(bot_emulator, 1)
    await queue(app, (1, message("doomed")), (1, message("next")))
    rule = bot_emulator.faults.server_error("sendMessage", 500, times=None)
    worker = make_worker(app, bot, clocks, max_attempts=4)

    for _ in range(10):
        await worker.run_once()
        clocks.advance(301)
    doomed, nxt = await rows(app)
    assert (doomed.status, doomed.attempts, nxt.status) == ("failed", 4, "failed")
    assert Counter(c.params["text"] for c in sends(bot_emulator)) == {"doomed": 4, "next": 4}

    rule.remove()
    await queue(app, (1, message("later")))
    await drain(worker, clocks, app)
    assert sends(bot_emulator)[-1].params["text"] == "later"


async def test_forbidden_marks_unreachable_and_calls_back_once(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                               clocks: Clocks) -> None:
    bot_emulator.user(10)  # never pressed START
    await started(bot_emulator, 11, 12)
    await bot_emulator.user(11).block()
    await queue(app, *[(chat, message(f"{chat}-{i}")) for i in range(3) for chat in (10, 11, 12)])
    unreachable: list[int] = []

    async def on_unreachable(chat_id: int) -> None:
        unreachable.append(chat_id)

    await drain(make_worker(app, bot, clocks, on_unreachable=on_unreachable), clocks, app)

    assert sorted(unreachable) == [10, 11]
    by_chat = defaultdict(list)
    for r in await rows(app):
        by_chat[r.chat_id].append(r.status)
    assert by_chat == {10: ["unreachable"] * 3, 11: ["unreachable"] * 3, 12: ["sent"] * 3}
    assert Counter(chat_of(c) for c in sends(bot_emulator)) == {10: 1, 11: 1, 12: 3}
    assert {c.status for c in sends(bot_emulator) if chat_of(c) != 12} == {403}


async def test_bad_request_fails_without_retry(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                               clocks: Clocks) -> None:
    await started(bot_emulator, 1, 2)
    await queue(app, (1, message("<b>unclosed")), (1, message("fine")), (2, message("also fine")))
    worker = make_worker(app, bot, clocks)
    await drain(worker, clocks, app)
    for _ in range(5):  # much later, still not retried
        clocks.advance(600)
        assert await worker.run_once() == 0

    bad, fine, also = await rows(app)
    assert bad.status == "failed" and "can't parse entities" in (bad.last_error or "")
    assert (fine.status, also.status) == ("sent", "sent")
    assert Counter(c.params["text"] for c in sends(bot_emulator)) == \
        {"<b>unclosed": 1, "fine": 1, "also fine": 1}


async def test_restart_takes_over_an_expired_claim_once(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                        clocks: Clocks) -> None:
    await started(bot_emulator, 1)
    await queue(app, (1, message("in flight when killed")), (1, message("queued behind it")))
    first_id = (await rows(app))[0].id
    async with app.sessions() as session, session.begin():  # a process died right after claiming
        await session.execute(update(OutboxRow).where(OutboxRow.id == first_id).values(
            status="sending", claimed_by="dead", claimed_until=app.clock() + timedelta(seconds=60), attempts=1))
    worker = make_worker(app, bot, clocks, worker_id="new")  # the restarted process

    assert await worker.run_once() == 0  # the claim is live: neither row may go yet
    clocks.advance(59)
    assert await worker.run_once() == 0
    clocks.advance(2)
    assert await worker.run_once() == 1
    await drain(worker, clocks, app)
    for _ in range(3):
        clocks.advance(120)
        assert await worker.run_once() == 0

    assert [c.params["text"] for c in sends(bot_emulator)] == ["in flight when killed", "queued behind it"]
    first = (await rows(app))[0]
    assert (first.status, first.attempts, first.claimed_by) == ("sent", 2, None)


async def test_stale_worker_cannot_overwrite_a_taken_over_row(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                              clocks: Clocks) -> None:
    await started(bot_emulator, 1)
    await queue(app, (1, message("x")))
    slow = make_worker(app, bot, clocks, worker_id="slow", claim_ttl=timedelta(seconds=10))
    (claimed,) = await slow._claim(1)
    clocks.advance(11)
    assert await make_worker(app, bot, clocks, worker_id="fast").run_once() == 1
    from notifier.outbox import Outcome

    assert await slow._record(claimed, Outcome("pending", "late timeout")) is False
    assert (await rows(app))[0].status == "sent"


# ------------------------------------------------------------------------------ concurrency
async def test_two_workers_send_each_row_exactly_once(app: App, bot_emulator: BotAPIEmulator,
                                                      bot: Bot) -> None:
    """Real time, two workers looping concurrently (SKIP LOCKED on PostgreSQL, the conditional
    UPDATE on SQLite); loose limits so 200 rows take a second or two."""
    chats = list(range(100, 150))
    await started(bot_emulator, *chats)
    await queue(app, *[(chat, message(f"{chat}:{i}")) for i in range(4) for chat in chats])
    limits = RateLimits(global_per_second=1_000, per_chat_interval=0.001)
    workers = [OutboxWorker(app.sessions, bot, app.clock, worker_id=f"w{n}", limits=limits, batch_limit=7,
                            tick=0.001) for n in range(2)]
    sent = Counter[str]()
    all_sent = asyncio.Event()
    originals = [w._deliver for w in workers]

    def counting(worker: OutboxWorker, original: Callable[..., Awaitable[int]]) -> Callable[..., Awaitable[int]]:
        async def deliver(row: Any, permit: Any) -> int:
            result = await original(row, permit)
            sent[worker.worker_id] += result
            if sum(sent.values()) >= 200:
                all_sent.set()
            return result
        return deliver

    for worker, original in zip(workers, originals, strict=True):
        worker._deliver = counting(worker, original)  # type: ignore[method-assign]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        async with asyncio.timeout(20):
            await all_sent.wait()
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    texts = Counter(c.params["text"] for c in sends(bot_emulator))
    assert len(texts) == 200 and set(texts.values()) == {1}
    for chat in chats:
        assert [c.params["text"] for c in sends(bot_emulator) if chat_of(c) == chat] == \
            [f"{chat}:{i}" for i in range(4)]
    assert sent["w0"] > 0 and sent["w1"] > 0
    assert {r.status for r in await rows(app)} == {"sent"}


async def test_postgres_claim_skips_locked_rows(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                clocks: Clocks) -> None:
    if app.engine.dialect.name != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is the PostgreSQL path")
    await started(bot_emulator, 1, 2)
    await queue(app, (1, message("locked elsewhere")), (2, message("free")))
    async with app.engine.connect() as other:
        # Another process is in the middle of claiming chat 1's row.
        await other.execute(text("SELECT id FROM outbox WHERE chat_id = 1 FOR UPDATE"))
        async with asyncio.timeout(5):  # waiting on the lock instead of skipping would hang here
            assert await make_worker(app, bot, clocks).run_once() == 1
        await other.rollback()
    assert [c.params["text"] for c in sends(bot_emulator)] == ["free"]


async def test_run_loop_wakes_on_notify(app: App, bot_emulator: BotAPIEmulator, bot: Bot) -> None:
    await started(bot_emulator, 1)
    worker = OutboxWorker(app.sessions, bot, app.clock, worker_id="loop", idle_interval=60)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.05)  # the first round found nothing; the next poll is a minute away
    await queue(app, (1, message("now")))
    worker.notify()
    await bot_emulator.wait_for_call("sendMessage", timeout=3)
    stop.set()
    async with asyncio.timeout(3):
        await task


# ------------------------------------------------------------------------------ rate limits
async def test_one_chat_gets_at_most_one_message_per_second(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                            clocks: Clocks) -> None:
    await started(bot_emulator, 1)
    await bulk_queue(app, [(1, message(f"m{i}")) for i in range(100)])
    await drain(make_worker(app, bot, clocks), clocks, app, step=1.0)

    calls = sends(bot_emulator)
    assert [c.params["text"] for c in calls] == [f"m{i}" for i in range(100)]
    gaps = [b.time - a.time for a, b in zip(calls, calls[1:], strict=False)]
    assert min(gaps) >= 1.0
    assert calls[-1].time - calls[0].time <= 100  # and not needlessly slower


async def test_many_chats_never_exceed_30_per_second(app: App, bot_emulator: BotAPIEmulator, bot: Bot,
                                                     clocks: Clocks) -> None:
    chats = list(range(1, 1001))
    for chat in chats:
        bot_emulator.user(chat, started=True)  # as if each had pressed START (1,000 updates spared)
    await bulk_queue(app, [(chat, message(f"n{chat}")) for chat in chats])
    await drain(make_worker(app, bot, clocks), clocks, app, step=1.0)

    times = sorted(c.time for c in sends(bot_emulator))
    assert len(times) == 1000 and all(c.ok for c in sends(bot_emulator))
    busiest = max(sum(1 for t in times[i:i + 40] if t < start + 1.0) for i, start in enumerate(times))
    assert busiest == 30
    assert times[-1] - times[0] <= 34  # 1,000 at 30/s: ~33.3 s, the limit is used, not wasted


def test_group_window_and_in_flight_sends() -> None:
    mono = Mono()
    limiter = RateLimiter(RateLimits(), mono)
    group, sent = -1001, []
    for _ in range(120):  # two minutes, one attempt every second
        if limiter.capacity() and limiter.chat_allows(group):
            limiter.release(limiter.acquire(group))
            sent.append(mono.now)
        mono.now += 1.0
    assert len(sent) == 40  # 20 per minute
    assert all(sum(1 for t in sent if s <= t < s + 60) <= 20 for s in sent)

    # A send still waiting for its answer keeps its slot: no second send to the chat meanwhile.
    permit = limiter.acquire(7)
    mono.now += 5
    assert not limiter.chat_allows(7) and 7 in limiter.blocked_chats()
    limiter.release(permit)
    assert not limiter.chat_allows(7)
    mono.now += 1.0
    assert limiter.chat_allows(7)

    limiter.pause(3)
    assert limiter.capacity() == 0 and limiter.global_wait() == 3
