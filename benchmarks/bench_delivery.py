"""Outbox delivery in real time through the Bot API emulator (prints numbers; not a test).

    .venv/bin/python benchmarks/bench_delivery.py                     # SQLite in a temp dir
    .venv/bin/python benchmarks/bench_delivery.py --one-chat 20       # shorter one-chat case
    .venv/bin/python benchmarks/bench_delivery.py --database-url postgresql+asyncpg://…/db

Scenarios: N notifications to N different chats (limit: 30/s overall) and M to one chat
(limit: 1/s per chat). For each: the achieved rate, the busiest 1-second window and the
smallest gap within one chat as the emulator saw the calls arrive, and the 429s it answered.
``--flood P`` makes the emulator answer a fraction P of calls with 429 retry_after=1, to show
the pause at work.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from bot.container import build_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from emulator import BotAPIEmulator  # noqa: E402
from notifier.outbox import OutboxWorker, enqueue, message  # noqa: E402
from storage.tables import OutboxRow  # noqa: E402


def busiest_window(times: list[float], width: float = 1.0) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + width:
            j += 1
        best = max(best, j - i)
    return best


async def scenario(name: str, database_url: str, chats: list[int], *, flood: float) -> None:
    app = await build_app(Settings(database_url=database_url, bot_token=None, policy_file=None,
                                   routing_file=None, rules_file=None, _env_file=None),
                          clock=lambda: datetime.now(UTC))
    try:
        async with app.engine.begin() as conn:  # a clean outbox for each scenario
            await conn.execute(text(f"DELETE FROM {OutboxRow.__tablename__}"))
        async with BotAPIEmulator() as emu:
            for chat in set(chats):
                emu.user(chat, started=True)
            if flood:
                emu.faults.retry_after("sendMessage", 1, times=None, probability=flood)
            bot = emu.make_bot()
            async with app.sessions() as session, session.begin():
                for n, chat in enumerate(chats):
                    await enqueue(session, chat, message(f"通知 {n}"), at=app.clock())
            worker = OutboxWorker(app.sessions, bot, app.clock, worker_id="bench")
            delivered = emu.subscribe()
            stop = asyncio.Event()
            started = time.monotonic()
            task = asyncio.create_task(worker.run(stop))
            remaining = len(chats)
            while remaining:
                if (await delivered.get())["type"] == "message_sent":
                    remaining -= 1
            elapsed = time.monotonic() - started
            stop.set()
            await task
            await bot.session.close()

            calls = emu.calls("sendMessage")
            ok = [c for c in calls if c.ok]
            per_chat: dict[int, list[float]] = defaultdict(list)
            for c in ok:
                per_chat[int(c.params["chat_id"])].append(c.time)
            gaps = [b - a for ts in per_chat.values() for a, b in zip(ts, ts[1:], strict=False)]
            rate = len(ok) / elapsed
            line = (f"{name}: {len(ok)} delivered in {elapsed:.1f} s = {rate:.2f} msg/s; "
                    f"busiest 1 s window {busiest_window([c.time for c in calls])} calls (limit 30)")
            if gaps:
                line += f"; smallest same-chat gap {min(gaps):.3f} s (limit 1.0)"
            print(line)
            print(f"    429 answers from the emulator: {sum(1 for c in calls if c.status == 429)}; "
                  f"other errors: {sum(1 for c in calls if not c.ok and c.status != 429)}")
    finally:
        await app.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--many", type=int, default=1000, help="notifications to as many chats")
    parser.add_argument("--one-chat", type=int, default=100, help="notifications to one chat")
    parser.add_argument("--flood", type=float, default=0.0, help="share of calls answered 429")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        print(f"database: {url.split('@')[-1]}")
        if args.many:
            await scenario(f"{args.many} chats × 1", url, list(range(1, args.many + 1)), flood=args.flood)
        if args.one_chat:
            await scenario(f"1 chat × {args.one_chat}", url, [7] * args.one_chat, flood=args.flood)


if __name__ == "__main__":
    asyncio.run(main())
