"""Intake throughput through the Bot API emulator, beside a bare aiogram echo bot (prints numbers; not a test).

    .venv/bin/python benchmarks/bench_intake.py                         # all setups, 1000 residents, 50 at once
    .venv/bin/python benchmarks/bench_intake.py --setups sqlite1 --residents 200
    .venv/bin/python benchmarks/bench_intake.py --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Each simulated resident files one complaint like a person would, waiting for every answer:
/start → a text without a place → the place → a phone number → press 「✅ 提交」 (5 updates).
``--concurrency`` residents are in flight at once. Per run: updates/s over the whole run and
p50/p95 of the time from sending an update to the bot's expected reply.

Setups (every bot runs as a subprocess; the emulator, the driver and the balancer share this process):

* ``sqlite1``: one ``wuye run`` (long polling) on SQLite; SQLite is one process by design.
* ``pg1``: one ``wuye run`` (long polling) on PostgreSQL.
* ``pg2``: two ``wuye run --webhook`` on PostgreSQL behind a round-robin balancer (as in
  tests/test_two_processes.py).

Each wuye run is paired, in the same invocation, with the echo bot (``Dispatcher`` + one handler
that answers every message/callback at once) served the same way (polling, or two webhook
processes behind the same balancer) and driven by the same script. The ratio wuye/echo of
updates/s is the figure to watch. RSS of the bot processes is read from /proc after start-up
and after the run. A scratch PostgreSQL database is created per run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import ClientError, ClientSession, web  # noqa: E402

from emulator import BotAPIEmulator, ChatMessage, SimUser  # noqa: E402

TOKEN = "515151:bench-intake"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SUBMIT = "✅ 提交"
# Texts without a place in them, so the bot asks for it; each lands in a different category.
TEXTS = ("楼道灯坏了,晚上很黑", "垃圾好几天没人清理了,很臭", "电梯按钮失灵,按了没反应",
         "晚上有人在楼下大声喧哗,吵得睡不着", "水管漏水,墙面都湿了", "门禁卡刷不开门")
PLACE, PHONE = "5栋3单元801", "13812345678"
STAFF = [(9000 + i, f"员工{i}", role) for i, role in
         enumerate([r for r in ("maintenance", "environment", "security", "service") for _ in range(3)]
                   + ["supervisor", "supervisor", "manager"])]

Predicate = Callable[[ChatMessage], Any]


# ---- the echo bot (run as a subprocess: `bench_intake.py echo-bot …`) --------------------------
async def echo_bot(api: str, token: str, port: int | None, webhook_url: str | None) -> None:
    from aiogram import Bot, Dispatcher, Router
    from aiogram.client.default import DefaultBotProperties
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api)),
              default=DefaultBotProperties(parse_mode="HTML"))
    card = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=SUBMIT, callback_data="submit")]])
    router = Router()

    @router.message()
    async def on_message(message: Message) -> None:
        # Every reply carries the 「✅ 提交」 button, so the driver's last step has one to press.
        await message.answer(message.text or "ok", reply_markup=card)

    @router.callback_query()
    async def on_callback(query: CallbackQuery) -> None:
        await query.answer()
        if query.message is not None:
            await bot.send_message(query.message.chat.id, "ok")

    dp = Dispatcher()
    dp.include_router(router)
    if port is None:
        await bot.delete_webhook()
        await dp.start_polling(bot, handle_signals=False)
        return
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application

    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot, handle_in_background=False).register(app, path="/telegram/webhook")
    setup_application(app, dp, bot=bot)
    if webhook_url:
        await bot.set_webhook(webhook_url + "/telegram/webhook")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


# ---- the driver ------------------------------------------------------------------------------
@dataclass
class Flow:
    """What each step waits for: the wuye bot's real prompts, or anything (the echo bot)."""

    welcome: Predicate
    ask_place: Predicate
    ask_contact: Predicate
    card: Predicate
    done: Predicate


WUYE_FLOW = Flow(welcome=lambda m: "欢迎" in m.text,
                 ask_place=lambda m: "位置" in m.text,
                 ask_contact=lambda m: "联系方式" in m.text,
                 card=lambda m: "请确认您的投诉" in m.text,
                 done=lambda m: "投诉编号" in m.text)
ANY = Flow(*(lambda m: True for _ in range(5)))


@dataclass
class Result:
    updates: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    rss_start: list[float] = field(default_factory=list)
    rss_end: list[float] = field(default_factory=list)
    cpu: float = 0.0  # CPU seconds the bot processes used during the run
    xacts: int = 0  # PostgreSQL transactions during the run
    load: tuple[float, float] = (0.0, 0.0)

    @property
    def cpu_per_update(self) -> float:
        return self.cpu / self.updates if self.updates else 0.0

    @property
    def rate(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000 if xs else float("nan")


async def _resident(user: SimUser, i: int, flow: Flow, result: Result, wait: float) -> None:
    async def step(send: Callable[[], Awaitable[Any]], expect: Predicate) -> ChatMessage:
        t0 = time.perf_counter()
        await send()
        reply = await user.wait_for(expect, timeout=wait)
        result.latencies.append(time.perf_counter() - t0)
        result.updates += 1
        return reply

    await step(user.start, flow.welcome)
    await step(lambda: user.send_text(TEXTS[i % len(TEXTS)]), flow.ask_place)
    await step(lambda: user.send_text(PLACE), flow.ask_contact)
    card = await step(lambda: user.send_text(PHONE), flow.card)
    await step(lambda: user.press(card, SUBMIT, wait_answer=False), flow.done)


async def drive(emu: BotAPIEmulator, residents: int, concurrency: int, flow: Flow,
                wait: float = 60.0) -> Result:
    result = Result()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(residents):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            try:
                await _resident(emu.user(100_000 + i, first_name=f"业主{i}"), i, flow, result, wait)
            except (TimeoutError, LookupError) as exc:
                result.errors += 1
                if result.errors <= 3:
                    print(f"  resident {i}: {exc}", file=sys.stderr)

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - t0
    result.load = (load0, os.getloadavg()[0])
    return result


# ---- processes, balancer, databases ------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.asynccontextmanager
async def round_robin(ports: list[int]) -> AsyncIterator[str]:
    """Each request to the next process in turn (the balancer of tests/test_two_processes.py)."""
    targets = itertools.cycle(ports)
    session = ClientSession()

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith(("content-type", "x-telegram"))}
        try:
            async with session.post(f"http://127.0.0.1:{next(targets)}{request.path}", data=await request.read(),
                                    headers=headers) as resp:
                return web.Response(status=resp.status, body=await resp.read())
        except ClientError:  # a process going away at the end: Telegram retries a 502
            return web.Response(status=502)

    app = web.Application()
    app.router.add_post("/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await session.close()
        await runner.cleanup()


async def _wait_port(port: int, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"bot process exited early with {proc.returncode}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"bot process did not listen on {port}")


@contextlib.asynccontextmanager
async def processes(cmds: list[tuple[list[str], dict[str, str]]], log: Path) -> AsyncIterator[list[Any]]:
    procs = []
    with open(log, "ab") as err:  # noqa: ASYNC230 - once, before anything is measured
        try:
            for cmd, env in cmds:
                procs.append(await asyncio.create_subprocess_exec(
                    *cmd, cwd=ROOT, env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL, stderr=err))
            yield procs
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


@contextlib.asynccontextmanager
async def scratch_database(kind: str, pg_url: str, workdir: Path) -> AsyncIterator[str]:
    """A fresh database with the schema and a few staff members (so complaints get assigned)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.container import build_app
    from bot.settings import Settings

    name = f"bench_intake_{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / (name + '.db')}"
    else:
        admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = pg_url.rsplit("/", 1)[0] + "/" + name
    try:
        app = await build_app(Settings(database_url=url, _env_file=None))
        for tid, staff_name, role in STAFF:
            await app.roster.add_staff(telegram_id=tid, name=staff_name, role=role)
        await app.close()
        yield url
    finally:
        if kind != "sqlite":
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await admin.dispose()


async def transactions(url: str) -> int:
    """Transactions committed or rolled back in the database so far (PostgreSQL's statistics)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            ))).scalar_one())
    finally:
        await engine.dispose()


async def count_complaints(url: str) -> int:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM complaints"))).scalar_one())
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _show_log_on_error(log: Path) -> AsyncIterator[None]:
    try:
        yield
    except Exception:
        print(f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)  # noqa: ASYNC240
        raise


def _wuye_env(api: str, url: str) -> dict[str, str]:
    return {"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": api, "DATABASE_URL": url, "WUYE_LOG_LEVEL": "WARNING"}


async def run_once(setup: str, bot: str, args: argparse.Namespace, workdir: Path) -> Result:
    """One bot ("wuye" or "echo") in one setup, on a fresh emulator (and database)."""
    nproc = 2 if setup == "pg2" else 1
    kind = "sqlite" if setup == "sqlite1" else "pg"
    log = workdir / f"{setup}-{bot}.log"
    db_cm: contextlib.AbstractAsyncContextManager[str | None] = (
        scratch_database(kind, args.postgres_url, workdir) if bot == "wuye" else contextlib.nullcontext())
    async with db_cm as url, BotAPIEmulator(token=TOKEN) as emu:
        for tid, staff_name, _ in STAFF:
            emu.user(tid, first_name=staff_name, started=True)
        lb: contextlib.AbstractAsyncContextManager[str | None] = (
            round_robin(ports := [_free_port() for _ in range(nproc)]) if nproc > 1 else contextlib.nullcontext())
        async with lb as lb_url:
            cmds: list[tuple[list[str], dict[str, str]]] = []
            for i in range(nproc):
                first = i == 0
                if bot == "wuye":
                    env = _wuye_env(emu.base_url, str(url))
                    cmd = [sys.executable, "-m", "bot", "run"]
                    if lb_url:
                        cmd.append("--webhook")
                        env |= {"WUYE_WEBHOOK_HOST": "127.0.0.1", "WUYE_WEBHOOK_PORT": str(ports[i])}
                        if first:  # one process registers the webhook, as a deployment script would
                            env["WUYE_WEBHOOK_URL"] = lb_url
                else:
                    env = {}
                    cmd = [sys.executable, __file__, "echo-bot", "--api", emu.base_url]
                    if lb_url:
                        cmd += ["--port", str(ports[i])] + (["--webhook-url", lb_url] if first else [])
                cmds.append((cmd, env))
            async with processes(cmds, log) as procs, _show_log_on_error(log):
                if lb_url:
                    for port, proc in zip(ports, procs, strict=True):
                        await _wait_port(port, proc)
                    await emu.wait_for_call("setWebhook", timeout=60)
                else:
                    await emu.wait_polling(TOKEN, timeout=60)
                await asyncio.sleep(1.0)  # let start-up work (commands, daily timer) settle
                rss_start = [rss_mib(p.pid) for p in procs]
                pg = bot == "wuye" and kind == "pg"
                xacts = await transactions(str(url)) if pg else 0
                cpu_start = sum(cpu_seconds(p.pid) for p in procs)
                result = await drive(emu, args.residents, args.concurrency, WUYE_FLOW if bot == "wuye" else ANY)
                result.cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_start
                if pg:
                    await asyncio.sleep(1.5)  # backends report their statistics within a second or so
                    result.xacts = await transactions(str(url)) - xacts
                result.rss_start, result.rss_end = rss_start, [rss_mib(p.pid) for p in procs]
        if bot == "wuye" and url:
            registered = await count_complaints(url)
            if registered != args.residents:
                print(f"  !! {registered} complaints registered for {args.residents} residents", file=sys.stderr)
    return result


def _row(label: str, r: Result) -> str:
    rss = "/".join(f"{a:.0f}→{b:.0f}" for a, b in zip(r.rss_start, r.rss_end, strict=True))
    return (f"{label:<28}{r.updates:>8}{r.seconds:>8.1f}{r.rate:>10.1f}{r.pct(0.5):>9.0f}{r.pct(0.95):>9.0f}"
            f"{r.errors:>5}{r.cpu_per_update * 1000:>8.1f}  {rss:<16} {r.load[0]:.1f}→{r.load[1]:.1f}")


LABELS = {"sqlite1": "1 process, SQLite, polling", "pg1": "1 process, PG, polling",
          "pg2": "2 processes, PG, webhook+LB"}


async def main(args: argparse.Namespace) -> None:
    print(f"residents {args.residents}, {args.concurrency} in flight, 5 updates each; "
          f"cpus {os.cpu_count()}, python {sys.version.split()[0]}")
    print(f"{'setup / bot':<28}{'updates':>8}{'secs':>8}{'upd/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'err':>5}{'cpu ms':>8}  {'RSS MiB start→end':<16} load")
    print("(cpu ms: CPU time of the bot process(es) per update; p50/p95: update → expected reply)")
    with tempfile.TemporaryDirectory(prefix="bench_intake_") as tmp:
        workdir = Path(tmp)
        for setup in args.setups.split(","):
            echo = await run_once(setup, "echo", args, workdir)
            print(_row(f"{LABELS[setup]} · echo", echo), flush=True)
            wuye = await run_once(setup, "wuye", args, workdir)
            print(_row(f"{LABELS[setup]} · wuye", wuye), flush=True)
            print(f"{'':<28}ratio wuye/echo: {wuye.rate / echo.rate:.2f} (updates/s), "
                  f"p50 ×{wuye.pct(0.5) / echo.pct(0.5):.1f}, CPU per update ×{wuye.cpu_per_update / max(echo.cpu_per_update, 1e-9):.1f}",
                  flush=True)
            if wuye.xacts:
                print(f"{'':<28}PostgreSQL transactions per update: {wuye.xacts / wuye.updates:.1f} "
                      "(background work included)", flush=True)
            for name in (f"{setup}-wuye.log", f"{setup}-echo.log"):
                text = (workdir / name).read_text(errors="replace").strip()
                if text:
                    print(f"  {name} (last lines):\n    " + "\n    ".join(text.splitlines()[-5:]), file=sys.stderr)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--residents", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--setups", default="sqlite1,pg1,pg2", help="comma-separated: sqlite1, pg1, pg2")
    parser.add_argument("--postgres-url", default=os.environ.get("WUYE_TEST_POSTGRES_URL", DEFAULT_PG))
    return parser.parse_args(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["echo-bot"]:
        sub = argparse.ArgumentParser()
        sub.add_argument("--api", required=True)
        sub.add_argument("--port", type=int)
        sub.add_argument("--webhook-url")
        a = sub.parse_args(sys.argv[2:])
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(echo_bot(a.api, TOKEN, a.port, a.webhook_url))
    else:
        asyncio.run(main(_parse(sys.argv[1:])))
