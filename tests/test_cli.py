"""The ``wuye`` command line, run for real (``python -m bot`` in a subprocess) against SQLite and
PostgreSQL. Each process costs about a second, so independent commands run side by side and each
test checks many things at once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.container import build_app
from bot.settings import Settings
from complaints.model import Actor
from complaints.services import NewComplaint
from tests.conftest import _truncate_sql

REPO = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"TS\d{8}-\d{4}")


@dataclass
class Result:
    args: Sequence[str]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Wuye:
    """``wuye …`` against one database, from a scratch directory (no .env, no ./data)."""

    def __init__(self, database_url: str, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("WUYE_") and k not in ("DATABASE_URL", "BOT_TOKEN")}
        env.update(DATABASE_URL=database_url, PYTHONPATH=str(REPO), PYTHONIOENCODING="utf-8")
        self.env, self.cwd = env, cwd

    def _start(self, args: Sequence[str]) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=self.cwd, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def many(self, *calls: Sequence[str]) -> list[Result]:
        """Run independent commands at the same time; results in the order given."""
        procs = [(args, self._start(args)) for args in calls]
        results = []
        for args, proc in procs:
            out, err = proc.communicate(timeout=120)
            # Whatever happens, a person reads a sentence, never a traceback.
            assert "Traceback" not in err, f"wuye {' '.join(args)}:\n{err}"
            results.append(Result(args, proc.returncode, out, err))
        return results

    def __call__(self, *args: str) -> Result:
        return self.many(args)[0]


def ok(result: Result) -> Result:
    assert result.code == 0, f"wuye {' '.join(result.args)} → {result.code}\n{result.out}\n{result.err}"
    return result


@pytest.fixture
async def wuye(database_url: str, tmp_path: Path) -> Wuye:
    """The CLI on a migrated, empty database (upgraded here so commands can start side by side)."""
    app = await build_app(Settings(database_url=database_url, _env_file=None), sink=_no_messages)
    try:
        if app.engine.dialect.name == "postgresql":  # the session's database is shared: empty it
            async with app.engine.begin() as conn:
                await conn.execute(text(_truncate_sql()))
    finally:
        await app.close()
    return Wuye(database_url, tmp_path)


async def _no_messages(uow: object, complaint: object) -> None:
    return None


async def _seed(database_url: str, *, accept: bool = False) -> str:
    """Staff and one complaint registered in-process, so the slow commands (a submit or an action
    that queues notifications imports aiogram: several seconds) all run in one parallel round."""
    app = await build_app(Settings(database_url=database_url, _env_file=None), sink=_no_messages)
    try:
        fixer = await app.roster.add_staff(telegram_id=101, name="张师傅", role="maintenance")
        await app.roster.add_staff(telegram_id=301, name="陈客服", role="service")
        await app.roster.add_staff(telegram_id=302, name="周临时", role="service")
        c = await app.complaints.submit(
            NewComplaint(text="5号楼地下室水管漏水", category="maintenance", urgency="general"), by=Actor.system())
        if accept:
            await app.complaints.act(c.number, "accept", by=fixer.as_actor())
    finally:
        await app.close()
    return c.number


@pytest.fixture
def sqlite_wuye(tmp_path: Path) -> tuple[Wuye, str]:
    """For what does not depend on the database engine: one SQLite file, fewer processes."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    return Wuye(url, tmp_path), url


async def test_submit_act_show_list_and_roster(wuye: Wuye, database_url: str) -> None:
    seeded = await _seed(database_url)  # routed to 张师傅 (101), the only maintenance staff
    upgrade, added, removed, submitted, accepted, by_desk, no_such = wuye.many(
        ["db", "upgrade"],
        ["staff", "add", "--telegram-id", "201", "--name", "李主任", "--role", "supervisor", "--phone", "13800000001"],
        ["staff", "remove", "302"],
        ["complaints", "submit", "--text", "3号楼电梯坏了,按钮没反应", "--channel", "visit", "--name", "刘女士",
         "--phone", "13912345678", "--location", "3号楼2单元", "--category", "maintenance", "--urgency", "general"],
        ["complaints", "act", seeded, "accept", "--by", "101"],
        ["complaints", "act", seeded, "accept", "--by", "301"],
        ["complaints", "act", "TS20990101-0001", "accept", "--by", "101"],
    )
    assert "数据库结构已是最新版本" in ok(upgrade).out  # already migrated: a no-op, exit 0
    assert "已添加员工 李主任" in ok(added).out
    assert "已停用员工 周临时" in ok(removed).out
    # submit: registered, assigned, and the number and both deadlines printed; the phone masked.
    number = NUMBER.search(ok(submitted).out).group(0)  # type: ignore[union-attr]
    assert number != seeded and "处理人:张师傅" in submitted.out
    assert "接单时限" in submitted.out and "处理时限" in submitted.out
    assert "139****5678" in submitted.out and "13912345678" not in submitted.out
    assert f"{seeded}:已执行「接单」,当前状态「处理中」" in ok(accepted).out
    # The same rules as the bot: the domain's own sentence on stderr, exit 1, nothing on stdout.
    assert (by_desk.code, by_desk.out) == (1, "")
    assert by_desk.err.strip() == "wuye: 这件投诉没有分派给您,不能接单。"
    assert no_such.code == 1 and "没有找到编号为 TS20990101-0001 的投诉" in no_such.err

    shown, shown_text, listed, roster = wuye.many(
        ["complaints", "show", seeded, "--json"],
        ["complaints", "show", number.lower()],
        ["complaints", "list", "--json"],
        ["staff", "list", "--json"],
    )
    data = ok(shown).json()
    assert (data["number"], data["status"], data["assignee"]) == (seeded, "in_progress", "张师傅")
    assert {"accept_by", "resolve_by", "created_at", "location", "contact", "history"} <= set(data)
    assert [e["kind"] for e in data["history"]] == ["submitted", "assigned", "accepted"]
    assert set(data["history"][0]) == {"kind", "label", "at", "actor_kind", "actor_id", "actor_role",
                                       "from_status", "to_status", "note", "data"}
    assert data["history"][2]["actor_role"] == "maintenance" and data["history"][2]["label"] == "接单"
    text_out = ok(shown_text).out
    assert number in text_out and "处理记录" in text_out and "登记受理" in text_out and "3号楼" in text_out
    rows = ok(listed).json()
    assert {r["number"] for r in rows} == {seeded, number} and all("history" not in r for r in rows)
    staff = {s["telegram_id"]: s for s in ok(roster).json()}
    assert {t: s["active"] for t, s in staff.items()} == {101: True, 201: True, 301: True, 302: False}
    assert (staff[201]["role"], staff[201]["phone"]) == ("supervisor", "13800000001")
    assert set(staff[201]) == {"id", "telegram_id", "name", "role", "phone", "active", "reachable"}


async def test_refusals_and_usage_errors(sqlite_wuye: tuple[Wuye, str]) -> None:
    wuye, url = sqlite_wuye
    number = await _seed(url, accept=True)
    (duplicate, bad_role, missing, by_nobody, bad_action, withdraw_by_staff, resolve_by_desk, in_progress,
     overdue, unknown, nothing) = wuye.many(
        ["staff", "add", "--telegram-id", "101", "--name", "重复", "--role", "security"],
        ["staff", "add", "--telegram-id", "102", "--name", "王", "--role", "plumber"],
        ["staff", "remove", "555"],
        ["complaints", "act", number, "accept", "--by", "999"],
        ["complaints", "act", number, "explode", "--by", "101"],
        ["complaints", "act", number, "withdraw", "--by", "101"],
        ["complaints", "act", number, "resolve", "--by", "301"],
        ["complaints", "list", "--status", "in_progress", "--json"],
        ["complaints", "list", "--overdue", "--json"],
        ["complaints", "show", "TS20990101-0001", "--json"],
        [],
    )
    assert duplicate.code == 1 and "已经是在职员工" in duplicate.err
    assert missing.code == 1 and "555" in missing.err
    assert by_nobody.code == 1 and "999" in by_nobody.err
    assert withdraw_by_staff.code == 1 and "只有投诉人本人可以撤销投诉" in withdraw_by_staff.err
    assert resolve_by_desk.code == 1 and "只有当前处理人或主管可以标记处理完成" in resolve_by_desk.err
    assert unknown.code == 1 and unknown.out == "" and "TS20990101-0001" in unknown.err
    assert (bad_role.code, bad_action.code, nothing.code) == (2, 2, 2)
    assert "invalid choice" in bad_role.err and "invalid choice" in bad_action.err
    assert [r["number"] for r in ok(in_progress).json()] == [number]
    assert ok(overdue).json() == []


async def test_sla_deadline_examples(sqlite_wuye: tuple[Wuye, str]) -> None:
    wuye, url = sqlite_wuye
    # Migrate once here: commands starting side by side on a fresh file would each try to.
    await (await build_app(Settings(database_url=url, _env_file=None), sink=_no_messages)).close()
    at = ["--at", "2026-09-30 17:00"]
    general, important, emergency, crossing, month, bad_at, bad_day, bad_month, no_urgency = wuye.many(
        ["sla", "deadlines", "--urgency", "general", *at, "--json"],
        ["sla", "deadlines", "--urgency", "important", *at, "--json"],
        ["sla", "deadlines", "--urgency", "emergency", *at],
        ["sla", "deadlines", "--urgency", "general", "--at", "2026-12-31 17:00", "--json"],
        ["calendar", "show", "2027-01"],
        ["sla", "deadlines", "--urgency", "general", "--at", "2026-13-01 10:00"],
        ["calendar", "set", "2027-02-30", "holiday"],
        ["calendar", "show", "2027-13"],
        ["sla", "deadlines", "--at", "2026-09-30 17:00"],
    )
    # The examples, with exactly these two keys, in ISO 8601 local time.
    assert ok(general).json() == {"accept_by": "2026-10-08T12:00:00+08:00", "resolve_by": "2026-10-10T17:00:00+08:00"}
    assert ok(important).json() == {"accept_by": "2026-10-08T10:00:00+08:00",
                                    "resolve_by": "2026-10-15T17:00:00+08:00"}
    assert ok(emergency).out.split() == ["accept_by", "2026-09-30T17:15:00+08:00",
                                         "resolve_by", "2026-10-01T17:00:00+08:00"]
    # Into 2027, a year chinese_calendar does not know: no crash, 元旦 (Jan 1) and the weekend skipped.
    assert ok(crossing).json() == {"accept_by": "2027-01-04T12:00:00+08:00",
                                   "resolve_by": "2027-01-06T17:00:00+08:00"}
    assert "2027年1月" in ok(month).out
    assert "2027-01-01 周五  休息日  [默认(周一至周五)]" in month.out and "元旦" in month.out
    for usage in (bad_at, bad_day, bad_month, no_urgency):
        assert usage.code == 2, usage
    assert "YYYY-MM-DD HH:MM" in bad_at.err and "2027-02-30" in bad_day.err and "2027-13" in bad_month.err


async def test_calendar_set_then_deadlines(wuye: Wuye) -> None:
    holiday1, holiday2, makeup = wuye.many(
        ["calendar", "set", "2027-01-07", "holiday", "--note", "测试假日"],
        ["calendar", "set", "2027-01-08", "holiday"],
        ["calendar", "set", "2027-01-09", "workday", "--note", "调休上班"],
    )
    assert "已将 2027-01-07 设为休息日" in ok(holiday1).out and "工作日" in ok(makeup).out
    ok(holiday2)
    after, month = wuye.many(
        ["sla", "deadlines", "--urgency", "general", "--at", "2027-01-06 17:00", "--json"],
        ["calendar", "show", "2027-01", "--json"],
    )
    # Without the overrides: Jan 7 12:00 and Jan 11 17:00. With Jan 7 and 8 off and Saturday Jan 9 a
    # working day, four working hours end on Jan 9 and the third working day is Jan 12.
    assert ok(after).json() == {"accept_by": "2027-01-09T12:00:00+08:00",
                                "resolve_by": "2027-01-12T17:00:00+08:00"}
    days = {d["date"]: d for d in ok(month).json()}
    assert len(days) == 31
    assert (days["2027-01-01"]["is_workday"], days["2027-01-01"]["source"]) == (False, "fallback")
    assert days["2027-01-09"] == {"date": "2027-01-09", "is_workday": True, "source": "override",
                                  "note": "调休上班"}
    assert (days["2027-01-07"]["is_workday"], days["2027-01-07"]["note"]) == (False, "测试假日")
