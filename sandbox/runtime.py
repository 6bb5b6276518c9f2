"""The sandbox as one object: emulator + bot + background work + the web page, on one event loop.

``wuye run`` without ``BOT_TOKEN`` calls :func:`run_sandbox`; tests build a :class:`Sandbox`
directly (``serve=False`` and an aiohttp test client, or ``port=0`` and a real browser).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from bot.settings import Settings
from sandbox.clock import OffsetClock
from sandbox.demo import CAST, Person, demo_before_roster, demo_complaints, has_complaints, seed_roster

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher
    from aiohttp import web

    from bot.container import App
    from emulator import BotAPIEmulator, SimUser
    from notifier.runtime import Background

logger = logging.getLogger(__name__)

SANDBOX_DATABASE_URL = "sqlite+aiosqlite:///data/sandbox.db"
SANDBOX_BOT_TOKEN = "700000001:SandboxTokenNotForTelegram_wuye_local"
STEPS = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7)}
WEEKDAYS = "一二三四五六日"


class SandboxError(Exception):
    """A problem the person starting the sandbox can fix (a port in use, say)."""


def sandbox_database_url(environ: dict[str, str] | os._Environ[str] | None = None) -> tuple[str, bool]:
    """(url, is_default): DATABASE_URL only when set explicitly in the environment.

    A ``.env`` file's DATABASE_URL is deliberately ignored: that is where a production database
    is configured, and trying the sandbox must never write demo people into it.
    """
    env = os.environ if environ is None else environ
    for name in ("DATABASE_URL", "WUYE_DATABASE_URL"):
        if env.get(name):
            return env[name], False
    return SANDBOX_DATABASE_URL, True


def reset_sqlite(url: str) -> None:
    """Start the default sandbox from nothing: its chats live in memory and would not match old data."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(database + suffix).unlink()


class Sandbox:
    def __init__(self, settings: Settings, *, demo: bool = False, clock: OffsetClock | None = None,
                 classifier: Any = None, timer_interval: float = 15.0) -> None:
        self.settings = settings
        self.demo = demo
        self.clock = clock or OffsetClock()
        self.cast: tuple[Person, ...] = CAST
        self.url: str | None = None
        self.emulator: BotAPIEmulator | None = None
        self.app: App | None = None
        self.bot: Bot | None = None
        self.dp: Dispatcher | None = None
        self.background: Background | None = None
        self._classifier = classifier
        self._timer_interval = timer_interval
        self._polling: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._listeners: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._clock_lock = asyncio.Lock()

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self, *, serve: bool = True, host: str | None = None, port: int | None = None) -> None:
        from aiogram.client.default import DefaultBotProperties

        from bot.container import build_app
        from bot.dispatcher import build_dispatcher, load_classifier, register_commands
        from emulator import BotAPIEmulator
        from notifier.runtime import Background

        try:
            self.app = await build_app(self.settings, clock=self.clock)
            self.clock.tz = self.app.policy.tz  # the page shows local time in the policy's zone
            self.emulator = BotAPIEmulator(token=SANDBOX_BOT_TOKEN, bot_username="wuye_sandbox_bot",
                                           bot_first_name="物业助手", clock=self.clock.timestamp, seed=None)
            # The bot keeps a ledger of handled update ids in the database; a new emulator would count
            # from the same start again, and on a kept database its updates would look already handled.
            self.emulator.bot().next_update_id = int(time.time() * 1000)
            await self.emulator.start("127.0.0.1", 0)
            self._pump = asyncio.create_task(self._forward_events(self.emulator.subscribe()), name="sandbox-events")
            classifier = self._classifier or await load_classifier(self.settings)

            fresh = not await has_complaints(self.app)
            if self.demo and fresh:
                await demo_before_roster(self.app)
            await seed_roster(self.app)
            for person in self.cast:  # "started": the bot may write to every one of them
                self.emulator.user(person.telegram_id, first_name=person.name, started=True)

            self.bot = self.emulator.make_bot(default=DefaultBotProperties(parse_mode="HTML"))
            self.dp = build_dispatcher(self.app, classifier)
            await register_commands(self.bot)
            self._polling = asyncio.create_task(
                self.dp.start_polling(self.bot, handle_signals=False, polling_timeout=10), name="sandbox-polling")
            await self.emulator.wait_polling(SANDBOX_BOT_TOKEN, timeout=15)
            self.background = Background(self.app, self.bot, timer_interval=self._timer_interval,
                                         outbox_idle=0.2, worker_id="sandbox")
            await self.background.start()
            await self._greet()
            if self.demo and fresh:
                made = await demo_complaints(self.app)
                logger.info("sandbox demo complaints: %s", ", ".join(f"{k} {v}" for k, v in made.items()))
            if serve:
                await self._serve(host or self.settings.sandbox_host,
                                  self.settings.sandbox_port if port is None else port)
        except BaseException:
            await self.stop()
            raise

    async def _greet(self) -> None:
        """Everyone presses START, so each chat opens with the bot's greeting and menu."""
        assert self.emulator is not None
        users = [self.sim(p.telegram_id) for p in self.cast]
        for user in users:
            await user.start()
        for user in users:
            with contextlib.suppress(TimeoutError):
                await user.wait_for(lambda m: True, timeout=15)

    async def _serve(self, host: str, port: int) -> None:
        from aiohttp import web

        from sandbox.server import make_web_app

        self._runner = web.AppRunner(make_web_app(self), shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise SandboxError(f"无法在 {host}:{port} 上启动沙盒网页({exc.strerror or exc})。"
                               f"端口可能已被占用:请设置 WUYE_SANDBOX_PORT=<其他端口> 后重试。") from exc
        sockets = getattr(getattr(site, "_server", None), "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{bound}"

    async def stop(self) -> None:
        """Stop everything that was started, in reverse order; safe to call twice."""
        for queue in list(self._listeners):
            queue.put_nowait(None)  # ends the page's event streams, so the web server can close
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.background is not None:
            await self.background.stop()
            self.background = None
        if self._polling is not None:
            if not self._polling.done() and self.dp is not None:
                with contextlib.suppress(RuntimeError):
                    await self.dp.stop_polling()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._polling, 10)
            self._polling = None
        if self.bot is not None:
            await self.bot.session.close()
            self.bot = None
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        if self.emulator is not None:
            await self.emulator.stop()
            self.emulator = None
        if self.app is not None:
            await self.app.close()
            self.app = None

    # ---- people and chats ----------------------------------------------------------------------
    def person(self, telegram_id: int) -> Person | None:
        return next((p for p in self.cast if p.telegram_id == telegram_id), None)

    def sim(self, telegram_id: int) -> SimUser:
        assert self.emulator is not None
        return self.emulator.user(telegram_id)

    # ---- the page's live updates ---------------------------------------------------------------
    def listen(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(1000)
        self._listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._listeners.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._listeners):
            if queue.full():  # a stalled page loses old events; it re-reads the state on reconnect
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    async def _forward_events(self, source: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            event = await source.get()
            # Only what the page needs: which chat changed, and callback answers / typing to show.
            slim = {"type": event["type"], "chat_id": event.get("chat_id")}
            if event["type"] == "callback_answered":
                slim["callback"] = event.get("callback")
            elif event["type"] == "chat_action":
                slim["action"] = event.get("action")
            self.publish(slim)

    # ---- time ----------------------------------------------------------------------------------
    def summary_time(self) -> tuple[int, int]:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", self.settings.daily_summary_time.strip())
        return (int(match.group(1)), int(match.group(2))) if match else (9, 0)

    def time_info(self) -> dict[str, Any]:
        now = self.clock()
        hour, minute = self.summary_time()
        return {"time": now.isoformat(timespec="seconds"),
                "label": f"{now.month}月{now.day}日 周{WEEKDAYS[now.weekday()]} {now:%H:%M}",
                "offset_hours": round(self.clock.offset.total_seconds() / 3600, 2),
                "summary_time": f"{hour:02d}:{minute:02d}", "tz": str(self.clock.tz)}

    async def fast_forward(self, step: str) -> dict[str, Any]:
        """Move the clock ("1h", "1d", "7d", or "HH:MM" / "HHMM": the next such time) and fire what is due."""
        if self.background is None:
            raise SandboxError("sandbox is not running")
        async with self._clock_lock:
            if step in STEPS:
                self.clock.advance(STEPS[step])
            else:
                match = re.fullmatch(r"([01]?\d|2[0-3]):?([0-5]\d)", step.strip())
                if not match:
                    raise ValueError(f"unknown step {step!r}: use 1h, 1d, 7d or HH:MM")
                self.clock.to_next(int(match.group(1)), int(match.group(2)))
            fired = await self.background.fire_timers()
        info = {**self.time_info(), "fired": fired}
        self.publish({"type": "clock", **info})
        return info


# ---- `wuye run` without BOT_TOKEN -----------------------------------------------------------------
def run_sandbox(settings: Settings, *, demo: bool = False) -> int:
    try:
        _check_port(settings.sandbox_host, settings.sandbox_port)
    except SandboxError as exc:
        print(f"wuye: {exc}", flush=True)
        return 1
    url, is_default = sandbox_database_url()
    if is_default:
        reset_sqlite(url)
    settings = settings.model_copy(update={"database_url": url})
    if settings.log_level.upper() == "INFO":
        # One line per handled update and Alembic's plugin list would bury the sandbox's address.
        for name in ("aiogram.event", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        asyncio.run(_serve_forever(settings, demo=demo))
    except KeyboardInterrupt:
        pass
    except SandboxError as exc:
        print(f"wuye: {exc}", flush=True)
        return 1
    print("沙盒已停止。", flush=True)
    return 0


def _check_port(host: str, port: int) -> None:
    """Say at once that the port is taken, not after the bot has spent seconds starting."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise SandboxError(f"无法解析沙盒地址 {host}:{exc}。请检查 WUYE_SANDBOX_HOST。") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise SandboxError(f"无法在 {host}:{port} 上启动沙盒网页({exc.strerror or exc})。"
                               f"端口可能已被占用:请设置 WUYE_SANDBOX_PORT=<其他端口> 后重试。") from exc


async def _serve_forever(settings: Settings, *, demo: bool) -> None:
    stopping = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
        # SIGTERM (a service manager, `timeout`) stops as cleanly as Ctrl-C does.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    sandbox = Sandbox(settings, demo=demo)
    await sandbox.start()
    try:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        print(f"\n物业投诉机器人 · 本地沙盒已启动:{sandbox.url}\n"
              f"在浏览器中打开上面的地址即可试用(无需 Telegram 账号)。数据库:{where}\n"
              "按 Ctrl-C 停止。\n", flush=True)
        await stopping.wait()
    finally:
        await sandbox.stop()
