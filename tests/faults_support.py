"""Helpers for the fault tests (tests/test_faults_*.py): a real bot process (`python -m bot run`)
against the emulator, killed and restarted at will, and a resident who behaves like a person."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.container import App, build_app
from bot.settings import Settings
from emulator import BotAPIEmulator
from storage.tables import Base

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "434343:faults"
NUMBER = re.compile(r"TS\d{8}-\d{4,}")

# Prompts of the intake dialog (dialogs/texts.py), as a resident recognises them.
WELCOME, ASK_LOCATION, ASK_CONTACT, BAD_PHONE = "欢迎使用", "问题发生的位置", "请留下联系方式", "号码好像不对"
CARD, DONE, BUSY = "请确认您的投诉", "投诉编号", "系统繁忙"

# Descriptions with a place but no phone: the bot asks for the contact, then shows the card.
DESCRIPTIONS = ["5栋3单元楼道的灯坏了,晚上很黑", "2号楼楼下垃圾桶满了好几天没人清理", "7栋门口有陌生人到处发小广告",
                "3号楼电梯按钮失灵,按了没有反应", "6栋旁边绿化带里的杂草很久没人修剪了"]


async def fresh_app(database_url: str) -> App:
    app = await build_app(Settings(database_url=database_url, _env_file=None))
    if app.engine.dialect.name == "postgresql":
        async with app.engine.begin() as conn:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return app


class BotProcess:
    """`python -m bot run` (long polling) against the emulator; kill -9 and start again."""

    def __init__(self, emu: BotAPIEmulator, database_url: str, logs: Path, **env: str) -> None:
        self.emu, self.database_url, self.logs, self.extra = emu, database_url, logs, env
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        env = {**os.environ, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": self.emu.base_url,
               "DATABASE_URL": self.database_url, "WUYE_TIMER_INTERVAL": "3600",
               "WUYE_LOG_LEVEL": "WARNING", **self.extra}
        account = self.emu.bot(TOKEN)
        polls = account.polls_started
        self.starts += 1
        log = open(self.logs / f"bot-{self.starts}.log", "wb")  # noqa: SIM115, ASYNC230 - a tiny local file
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=log)
        log.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while account.polls_started == polls:  # listening once its first getUpdates arrives
            if self.proc.returncode is not None or loop.time() > deadline:
                raise RuntimeError(f"bot did not start: {self.log_text()[-2000:]}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, like a power cut or the OOM killer."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                await self.kill()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("bot-*.log")))

    def errors(self) -> list[str]:
        """ERROR lines the bot logged (tracebacks of failed updates or background jobs)."""
        return [line for line in self.log_text().splitlines() if " ERROR " in line]


async def add_staff(app: App, emu: BotAPIEmulator, people: list[tuple[int, str, str]]) -> None:
    for telegram_id, name, role in people:
        await app.roster.add_staff(telegram_id=telegram_id, name=name, role=role)
        emu.user(telegram_id, first_name=name, started=True, bot=TOKEN)


async def intake_like_a_person(user: Any, description: str, phone: str, *, patience: float = 3.0,
                               give_up: float = 50.0) -> str:
    """Go through the intake, answering whatever the bot asked last; when the bot says nothing
    for ``patience`` seconds (it was killed), send the last thing again. Returns the number."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up
    action: tuple[str, Any] = ("text", description)
    await user.send_text(description)
    seen = 0
    while loop.time() < deadline:
        try:
            await user.wait_for(lambda m: True, timeout=patience)
        except TimeoutError:
            await _redo(user, action)  # nothing came back: say it again
            continue
        await asyncio.sleep(0.05)  # read everything the bot said in one go
        user.mark_read()
        said = [m for m in user.bot_messages if m.text]
        unread, seen = said[seen:], len(said)
        latest = next((m for m in reversed(said) if _prompt(m.text)), None)
        if latest is None:
            continue
        kind = _prompt(latest.text)
        if kind == "done":
            match = NUMBER.search(latest.text)
            assert match, latest.text
            return match.group(0)
        if kind == "busy" or all(_prompt(m.text) is None for m in unread):
            continue  # a new answer will come; the re-send happens on silence
        action = {"welcome": ("text", description), "location": ("text", "5栋3单元801"),
                  "contact": ("text", phone), "card": ("press", latest.message_id)}[kind]
        await _redo(user, action)
    raise TimeoutError(f"resident {user.id} never got a number; bot said: {[m.text for m in user.bot_messages]}")


def _prompt(text: str) -> str | None:
    if DONE in text and NUMBER.search(text):
        return "done"
    if CARD in text:
        return "card"
    if ASK_CONTACT in text or BAD_PHONE in text:
        return "contact"
    if ASK_LOCATION in text:
        return "location"
    if WELCOME in text:
        return "welcome"
    if BUSY in text:
        return "busy"
    return None


async def _redo(user: Any, action: tuple[str, Any]) -> None:
    kind, value = action
    if kind == "text":
        await user.send_text(value)
    else:
        with contextlib.suppress(LookupError, ValueError):  # the card lost its buttons meanwhile
            await user.press(value, "✅ 提交", wait_answer=False)
