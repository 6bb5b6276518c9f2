"""The sandbox without a browser: its clock, its cast and demo data, and the page's HTTP API
(aiohttp test client) walking a complaint from first message to 结案 and the 09:00 summary."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from bot.settings import Settings
from complaints.model import Status
from emulator import make_png
from sandbox.clock import OffsetClock
from sandbox.demo import CAST
from sandbox.runtime import SANDBOX_DATABASE_URL, Sandbox, reset_sqlite, sandbox_database_url
from sandbox.server import make_web_app

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[1]
RESIDENT, WORKER, SUPERVISOR, MANAGER = 1001, 2001, 2005, 2006
# Wednesday 2026-11-25 10:00 in Shanghai: working hours, far from holidays.
WEDNESDAY_10AM = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI).timestamp()


# ---- the clock ------------------------------------------------------------------------------------
def test_offset_clock_moves_forward_only() -> None:
    clock = OffsetClock(now=lambda: WEDNESDAY_10AM)
    assert clock() == datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
    assert clock.advance(timedelta(hours=1)).hour == 11
    assert clock.timestamp() == WEDNESDAY_10AM + 3600
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))


def test_offset_clock_to_next_time_of_day() -> None:
    clock = OffsetClock(now=lambda: WEDNESDAY_10AM)
    moved = clock.to_next(9, 0)  # 09:00 has passed today: tomorrow
    assert (moved.day, moved.hour, moved.minute) == (26, 9, 0)
    moved = clock.to_next(18, 30)  # still ahead today
    assert (moved.day, moved.hour, moved.minute) == (26, 18, 30)


# ---- which database ------------------------------------------------------------------------------
def test_database_is_the_sandbox_file_unless_set_in_the_environment() -> None:
    assert sandbox_database_url({}) == (SANDBOX_DATABASE_URL, True)
    assert sandbox_database_url({"DATABASE_URL": "sqlite+aiosqlite:///x.db"}) == ("sqlite+aiosqlite:///x.db", False)
    assert sandbox_database_url({"WUYE_DATABASE_URL": "postgresql+asyncpg://h/db"})[1] is False


def test_reset_removes_the_sqlite_file_and_its_journals(tmp_path: Path) -> None:
    for name in ("s.db", "s.db-wal", "s.db-shm", "other.db"):
        (tmp_path / name).write_text("x")
    reset_sqlite(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]
    reset_sqlite("sqlite+aiosqlite:///:memory:")  # nothing to remove, no error


def test_a_port_in_use_is_reported_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from sandbox.runtime import run_sandbox

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sandbox.db").write_text("kept")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = Settings(bot_token=None, sandbox_port=port, _env_file=None)
        assert run_sandbox(settings) == 1
    assert "WUYE_SANDBOX_PORT" in capsys.readouterr().out
    assert (tmp_path / "data" / "sandbox.db").read_text() == "kept"  # nothing was reset


def test_run_without_token_and_with_webhook_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from bot.runner import run_command

    monkeypatch.delenv("BOT_TOKEN", raising=False)
    monkeypatch.delenv("WUYE_BOT_TOKEN", raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here
    assert run_command(webhook=True) == 2
    assert "BOT_TOKEN" in capsys.readouterr().err


# ---- a running sandbox ---------------------------------------------------------------------------
def _settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}", bot_token=None,
                    policy_file=None, routing_file=None, rules_file=None, _env_file=None)


@pytest.fixture
async def sandbox(tmp_path: Path, classifier: object) -> AsyncIterator[Sandbox]:
    sb = Sandbox(_settings(tmp_path), classifier=classifier, clock=OffsetClock(now=lambda: WEDNESDAY_10AM),
                 timer_interval=3600)  # timers fire when the test fast-forwards
    await sb.start(serve=False)
    try:
        yield sb
    finally:
        await sb.stop()


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_web_app(sandbox))) as c:
        yield c


async def _chat(client: TestClient, user_id: int) -> dict:
    response = await client.get(f"/api/chats/{user_id}")
    assert response.status == 200
    return await response.json()


async def _wait(client: TestClient, user_id: int, predicate: Callable[[dict], bool], what: str,
                within: float = 10.0) -> dict:
    """The newest bot message in ``user_id``'s chat that matches, as the page sees it."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        chat = await _chat(client, user_id)
        found = [m for m in chat["messages"] if m["out"] and predicate(m)]
        if found:
            return found[-1]
        if asyncio.get_running_loop().time() > deadline:
            texts = [m.get("text", "")[:60] for m in chat["messages"]]
            raise AssertionError(f"no {what} in chat {user_id}: {texts}")
        await asyncio.sleep(0.05)


def _has(text: str) -> Callable[[dict], bool]:
    return lambda m: text in (m.get("text") or "")


async def _post(client: TestClient, path: str, body: dict, status: int = 200) -> dict:
    response = await client.post(path, json=body)
    data = await response.json()
    assert response.status == status, data
    return data


async def _press(client: TestClient, user_id: int, message: dict, label: str) -> None:
    data = next(b["data"] for row in message["inline_keyboard"] for b in row if b["text"] == label)
    await _post(client, "/api/press", {"user_id": user_id, "message_id": message["id"], "data": data})


async def test_state_lists_every_role_with_a_greeting(client: TestClient) -> None:
    response = await client.get("/api/state")
    state = await response.json()
    assert [c["role"] for c in state["chats"]] == ["resident", "maintenance", "environment", "security",
                                                   "service", "supervisor", "manager"]
    assert state["clock"]["label"] == "11月25日 周三 10:00" and state["clock"]["summary_time"] == "09:00"
    resident = state["chats"][0]
    assert resident["name"] == "张先生" and resident["role_label"] == "业主"
    assert any("欢迎" in (m.get("text") or "") for m in resident["messages"])
    assert resident["reply_keyboard"]["rows"][0][0]["text"] == "📝 我要投诉"
    worker = state["chats"][1]
    assert any("王师傅" in (m.get("text") or "") for m in worker["messages"])
    assert {c["command"] for c in state["chats"][-1]["commands"]} >= {"/stats", "/overdue"}


async def test_a_complaint_from_first_message_to_closed_and_the_summary(client: TestClient,
                                                                       sandbox: Sandbox) -> None:
    await _post(client, "/api/send", {"user_id": RESIDENT, "text": "3栋2单元楼道灯坏了,晚上很黑"})
    await _wait(client, RESIDENT, _has("联系方式"), "contact question")
    keyboard = (await _chat(client, RESIDENT))["reply_keyboard"]
    share = next(b for row in keyboard["rows"] for b in row if b["contact"])
    sent = await _post(client, "/api/reply-button", {"user_id": RESIDENT, "text": share["text"]})
    assert sent["message"]["contact"]["phone_number"].endswith("1001")
    card = await _wait(client, RESIDENT, _has("请确认您的投诉"), "confirmation card")
    assert "3号楼" in card["text"]
    assert any(e["type"] == "bold" for e in card["entities"])  # formatting reaches the page
    await _press(client, RESIDENT, card, "✅ 提交")
    done = await _wait(client, RESIDENT, _has("已登记"), "complaint number")
    number = re.search(r"TS\d{8}-\d{4}", done["text"]).group(0)  # type: ignore[union-attr]

    assignment = await _wait(client, WORKER, lambda m: number in (m.get("text") or "") and "新投诉" in m["text"],
                             "assignment card")
    await _press(client, WORKER, assignment, "✅ 接单")
    await _wait(client, RESIDENT, _has("已由工作人员受理"), "accepted notice")
    await _press(client, WORKER, assignment, "🏁 处理完成")
    await _wait(client, WORKER, _has("处理结果"), "resolution prompt")
    await _post(client, "/api/send", {"user_id": WORKER, "text": "已更换楼道灯泡"})
    ask = await _wait(client, RESIDENT, _has("解决了吗"), "follow-up question")
    await _press(client, RESIDENT, ask, "👍 已解决")
    stars = await _wait(client, RESIDENT, _has("请为投诉"), "stars")
    assert stars["edited"] and stars["id"] == ask["id"]  # the same message, edited
    await _press(client, RESIDENT, stars, "⭐⭐⭐⭐⭐")
    await _wait(client, RESIDENT, _has("已结案"), "closed")
    complaint = await sandbox.app.complaints.get(number)  # type: ignore[union-attr]
    assert complaint.status is Status.CLOSED and complaint.rating == 5

    moved = await _post(client, "/api/clock", {"advance": "09:00"})
    assert moved["label"] == "11月26日 周四 09:00" and moved["fired"] >= 1
    summary = await _wait(client, MANAGER, _has("每日投诉逾期汇总"), "daily summary")
    assert summary["date"] == int(datetime(2026, 11, 26, 9, 0, tzinfo=SHANGHAI).timestamp())


async def test_missed_accept_deadline_shows_after_fast_forward(client: TestClient) -> None:
    await _post(client, "/api/send", {"user_id": RESIDENT, "text": "5栋电梯按钮坏了"})
    await _wait(client, RESIDENT, _has("联系方式"), "contact question")
    await _post(client, "/api/contact", {"user_id": RESIDENT})
    card = await _wait(client, RESIDENT, _has("请确认您的投诉"), "confirmation card")
    await _press(client, RESIDENT, card, "✅ 提交")
    await _wait(client, WORKER, _has("新投诉"), "assignment")
    for _ in range(5):  # the accept window is at most 4 working hours
        await _post(client, "/api/clock", {"advance": "1h"})
    await _wait(client, SUPERVISOR, _has("超时未接单"), "supervisor notice")


async def test_photos_sample_and_uploaded_and_files_served(client: TestClient) -> None:
    sent = await _post(client, "/api/photo", {"user_id": RESIDENT, "caption": "楼道灯"})
    photo = sent["message"]["photo"]
    response = await client.get(f"/files/{photo['file_id']}")
    assert response.status == 200 and (await response.read()).startswith(b"\x89PNG")
    assert "Content-Disposition" not in response.headers  # shown inline, not downloaded

    upload = make_png(64, 48, (10, 200, 10))
    form = FormData({"user_id": str(RESIDENT), "caption": ""})
    form.add_field("file", upload, filename="photo.png", content_type="image/png")
    response = await client.post("/api/photo", data=form)
    assert response.status == 200, await response.text()
    assert (await response.json())["message"]["photo"]["width"] == 64

    form = FormData({"user_id": str(RESIDENT)})
    form.add_field("file", b"not an image", filename="notes.txt")
    response = await client.post("/api/photo", data=form)
    assert response.status == 400
    assert (await client.get("/files/nope")).status == 404


async def test_excel_report_downloads_with_its_chinese_name(client: TestClient) -> None:
    await _post(client, "/api/send", {"user_id": MANAGER, "text": "/stats"})
    message = await _wait(client, MANAGER, lambda m: "media" in m, "document", within=60)
    assert message["media"]["file_name"].endswith(".xlsx")
    response = await client.get(f"/files/{message['media']['file_id']}")
    assert response.status == 200 and (await response.read())[:2] == b"PK"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''%E9%A1%BE" in disposition  # 顾…


async def test_bad_requests_are_refused_politely(client: TestClient) -> None:
    assert (await _post(client, "/api/send", {"user_id": 42, "text": "hi"}, status=404))["error"]
    assert (await _post(client, "/api/send", {"user_id": RESIDENT, "text": "  "}, status=400))["error"]
    assert (await _post(client, "/api/clock", {"advance": "soon"}, status=400))["error"]
    assert (await _post(client, "/api/reply-button", {"user_id": WORKER, "text": "nope"}, status=409))["error"]
    welcome = await _wait(client, RESIDENT, _has("欢迎"), "welcome")
    await _post(client, "/api/press", {"user_id": RESIDENT, "message_id": welcome["id"], "data": "x"}, status=409)
    response = await client.post("/api/send", data={"user_id": str(RESIDENT), "text": "form post"})
    assert response.status == 415  # only JSON: another web page cannot post here unseen
    assert (await client.get("/api/chats/abc")).status == 404


async def test_page_and_static_files_are_served(client: TestClient) -> None:
    page = await (await client.get("/")).text()
    assert "物业投诉机器人" in page and "/static/app.js" in page
    for asset in ("/static/app.js", "/static/app.css"):
        response = await client.get(asset)
        assert response.status == 200
        # Offline: nothing is loaded from another host.
        assert not re.search(r"(src|href)=[\"']https?://|url\(\s*[\"']?https?://|@import", await response.text())
    assert not re.search(r"(src|href)=[\"']https?://", page)


async def test_events_stream_tells_the_page_what_changed(client: TestClient) -> None:
    response = await client.get("/api/events")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert (await response.content.readline()).startswith(b"event: hello")
    await _post(client, "/api/send", {"user_id": RESIDENT, "text": "/help"})
    seen: list[dict] = []

    async def read() -> None:
        while not any(e["type"] == "message_sent" and e["chat_id"] == RESIDENT for e in seen):
            line = await response.content.readline()
            if line.startswith(b"data: ") and b'"type"' in line:
                seen.append(json.loads(line[6:]))

    await asyncio.wait_for(read(), 10)
    assert {"type": "user_message", "chat_id": RESIDENT} in seen
    await _post(client, "/api/clock", {"advance": "1h"})

    async def clock_event() -> dict:
        while True:
            line = await response.content.readline()
            if line.startswith(b"data: ") and json.loads(line[6:])["type"] == "clock":
                return json.loads(line[6:])

    assert (await asyncio.wait_for(clock_event(), 10))["label"] == "11月25日 周三 11:00"
    response.close()


async def test_demo_has_a_complaint_in_every_state(tmp_path: Path, classifier: object) -> None:
    sb = Sandbox(_settings(tmp_path), demo=True, classifier=classifier,
                 clock=OffsetClock(now=lambda: WEDNESDAY_10AM), timer_interval=3600)
    await sb.start(serve=False)
    try:
        complaints = await sb.app.complaints.list()  # type: ignore[union-attr]
        assert {c.status for c in complaints} == set(Status)
        assert {p.telegram_id for p in CAST} <= set(sb.emulator.users)  # type: ignore[union-attr]
        worker = sb.sim(WORKER)
        await worker.wait_for(lambda m: "新投诉" in m.text)  # the outbox delivered real cards
    finally:
        await sb.stop()
    # A restart on the same database neither duplicates the roster nor the demo complaints.
    again = Sandbox(_settings(tmp_path), demo=True, classifier=classifier, timer_interval=3600)
    await again.start(serve=False)
    try:
        assert len(await again.app.complaints.list()) == len(complaints)  # type: ignore[union-attr]
        assert len(await again.app.roster.list_staff()) == 6  # type: ignore[union-attr]
    finally:
        await again.stop()


async def test_wuye_run_without_token_serves_the_sandbox_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """The README's first command, as a real process: the page answers, Ctrl-C ends it cleanly, and
    the database is the sandbox's own file under data/ (never a production DATABASE_URL from .env)."""
    import os
    import signal
    import socket
    import sys

    import aiohttp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WUYE_") and k not in ("BOT_TOKEN", "DATABASE_URL")}
    env.update(WUYE_SANDBOX_PORT=str(port), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite+aiosqlite:///production.db\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output: list[str] = []
    try:
        async def started() -> str:
            assert proc.stdout is not None
            while True:
                line = (await proc.stdout.readline()).decode()
                output.append(line)
                if not line:
                    raise AssertionError("wuye run exited:\n" + "".join(output))
                if match := re.search(r"http://127\.0\.0\.1:\d+", line):
                    return match.group(0)

        url = await asyncio.wait_for(started(), 90)
        assert url == f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session, session.get(url + "/api/state") as response:
            state = await response.json()
        assert len(state["chats"]) == 7
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 30)
        output.append(rest.decode())
        assert proc.returncode == 0, "".join(output)
        assert "沙盒已停止" in output[-1] and "Traceback" not in "".join(output)
        assert "BOT_TOKEN" in "".join(output)  # says how to connect to Telegram instead
        assert (tmp_path / "data" / "sandbox.db").exists() and not (tmp_path / "production.db").exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
