"""Rough emulator throughput: `python benchmarks/bench_emulator.py [N]`.

Measures (1) sendMessage round trips from the real aiogram client and (2) user-message ->
bot-reply latency through the polling loop, so test authors know what a step costs.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from aiogram import Dispatcher, F, Router
from aiogram.types import Message

from emulator import BotAPIEmulator
from emulator.testing import run_polling


async def main(n: int) -> None:
    async with BotAPIEmulator() as emu:
        bot = emu.make_bot()
        user = emu.user(1, started=True)
        started = time.perf_counter()
        for i in range(n):
            await bot.send_message(user.id, f"消息 {i}")
        elapsed = time.perf_counter() - started
        print(f"sendMessage: {n} calls in {elapsed:.2f}s = {n / elapsed:.0f}/s")

        router = Router()

        @router.message(F.text)
        async def echo(message: Message) -> None:
            await message.answer(message.text or "")

        dp = Dispatcher()
        dp.include_router(router)
        async with run_polling(dp, bot, emu):
            latencies = []
            for i in range(n // 4):
                t0 = time.perf_counter()
                await user.send_text(f"回声 {i}")
                await user.wait_for(lambda m, i=i: m.text == f"回声 {i}")
                latencies.append(time.perf_counter() - t0)
        print(f"echo round trip: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms over {len(latencies)}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 400))
