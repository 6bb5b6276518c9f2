"""Two real bot processes (`wuye run --webhook`) on one PostgreSQL database behind a round-robin
load balancer, against the emulator: one resident's dialog alternates between them.

Checks: one complaint, the dialog never lost its place, every reminder and escalation sent once,
and an update Telegram delivers twice is handled once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import ClientSession, web
from sqlalchemy import text

from bot.container import build_app
from bot.settings import Settings
from emulator import BotAPIEmulator
from storage.tables import Base
from tests.conftest import NEEDS_POSTGRES

pytestmark = NEEDS_POSTGRES

TOKEN = "424242:two-processes"
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _round_robin(ports: list[int]) -> AsyncIterator[tuple[str, list[int]]]:
    """A tiny load balancer: each request goes to the next process in turn."""
    targets = itertools.cycle(ports)
    served = [0 for _ in ports]
    session = ClientSession()

    async def forward(request: web.Request) -> web.Response:
        port = next(targets)
        served[ports.index(port)] += 1
        async with session.post(f"http://127.0.0.1:{port}{request.path}", data=await request.read(),
                                headers={k: v for k, v in request.headers.items()
                                         if k.lower().startswith(("content-type", "x-telegram"))}) as resp:
            return web.Response(status=resp.status, body=await resp.read())

    app = web.Application()
    app.router.add_post("/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", served
    finally:
        await session.close()
        await runner.cleanup()


async def _wait_port(port: int, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90  # a busy 2-core CI machine takes a while to import and start
    while loop.time() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"bot process exited early with {proc.returncode}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"bot process did not listen on {port}")


async def test_two_processes_share_one_dialog_and_send_each_reminder_once(
        postgres_database_url: str, tmp_path: Path) -> None:
    # Tiny emergency windows so the accept reminder (75 %) and the missed accept come in seconds.
    policy = tmp_path / "policy.toml"
    policy.write_text("[emergency]\naccept_minutes = 0.15\nresolve_hours = 24\n", encoding="utf-8")
    settings = Settings(database_url=postgres_database_url, _env_file=None)
    app = await build_app(settings)
    async with app.engine.begin() as conn:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    for tid, name, role in [(501, "王师傅", "maintenance"), (502, "刘师傅", "maintenance"),
                            (601, "赵主任", "supervisor")]:
        await app.roster.add_staff(telegram_id=tid, name=name, role=role)

    ports = [_free_port(), _free_port()]
    procs: list[asyncio.subprocess.Process] = []
    async with BotAPIEmulator(token=TOKEN) as emu, _round_robin(ports) as (lb_url, served):
        emu.webhook_duplicate_probability = 1.0  # every update delivered twice: must be handled once
        staff = {tid: emu.user(tid, first_name=name, started=True)
                 for tid, name in [(501, "王师傅"), (502, "刘师傅"), (601, "赵主任")]}
        resident = emu.user(1001, first_name="张三")
        try:
            for i, port in enumerate(ports):
                env = {**os.environ, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": emu.base_url,
                       "DATABASE_URL": postgres_database_url, "WUYE_WEBHOOK_HOST": "127.0.0.1",
                       "WUYE_WEBHOOK_PORT": str(port), "WUYE_POLICY_FILE": str(policy),
                       "WUYE_TIMER_INTERVAL": "0.3", "WUYE_LOG_LEVEL": "WARNING"}
                if i == 0:  # one process registers the webhook, as a deployment script would
                    env["WUYE_WEBHOOK_URL"] = lb_url
                procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot", "run", "--webhook", cwd=ROOT, env=env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE))
            for port, proc in zip(ports, procs, strict=True):
                await _wait_port(port, proc)
            await emu.wait_for_call("setWebhook", timeout=60)

            await resident.start()
            await resident.wait_for(lambda m: "欢迎" in m.text, timeout=15)
            await resident.send_text("电梯困人了,快来人!")
            await resident.wait_for(lambda m: "位置" in m.text, timeout=15)
            await resident.send_text("2号楼1单元")
            done = await resident.wait_for(lambda m: "投诉编号" in m.text, timeout=15)

            complaints = await app.complaints.list()
            assert len(complaints) == 1, "one dialog, one complaint, whichever process took each step"
            number = complaints[0].number
            assert number in done.text
            assert served[0] > 0 and served[1] > 0, "the load balancer used both processes"

            first_id = complaints[0].assignee_id
            holder = next(s for s in await app.roster.list_staff() if s.id == first_id)
            other = 502 if holder.telegram_id == 501 else 501
            # Reminder at 75 % of 9 s, missed accept at 9 s: both processes tick every 0.3 s.
            await staff[other].wait_for(lambda m: number in m.text and "紧急投诉" in m.text, timeout=30)
            await staff[601].wait_for(lambda m: "超时未接单" in m.text, timeout=15)
            await asyncio.sleep(1.5)  # time for any duplicate to show up (the next window ends at 18 s)

            def count(chat_id: int, needle: str) -> int:
                return sum(1 for m in staff[chat_id].bot_messages if needle in m.text and number in m.text)

            assert count(holder.telegram_id, "提醒") == 1
            assert count(holder.telegram_id, "紧急投诉") == 1
            assert count(other, "紧急投诉") == 1
            assert count(601, "超时未接单") == 1
            assert sum(1 for m in resident.bot_messages if number in m.text and "前处理完毕" in m.text) == 1, [m.text for m in resident.bot_messages]
            assert emu.webhooks[TOKEN].duplicates > 0, "the test really exercised redelivery"
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
                if proc.returncode is None:
                    proc.kill()
            await app.close()
