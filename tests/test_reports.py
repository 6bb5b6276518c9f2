"""Manager reports: the daily overdue summary and the monthly 《顾客投诉分类统计表》.

One scripted November (``november`` fixture) exercises every figure with numbers worked out by
hand below; each test runs on SQLite and, when configured, on PostgreSQL.
"""

from __future__ import annotations

import argparse
import io
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.container import App
from complaints.clock import ManualClock
from complaints.model import Actor, Complaint, Contact, Role, Status, Urgency
from complaints.people import Resident, Staff
from complaints.services import NewComplaint
from notifier import reports
from notifier.report_cli import ReportUsageError, report_daily_command, report_monthly_command
from notifier.reports import (
    CJKFontMissing,
    MonthlyReport,
    MonthlyRow,
    daily_summary,
    display_width,
    find_cjk_font,
    month_bounds,
    monthly_png,
    monthly_report,
    monthly_xlsx,
    parse_month,
    previous_month,
    render_daily,
    render_monthly,
)
from tests.conftest import SHANGHAI

PHONE = "13812345678"
MASKED = "138****5678"
RESIDENT_NAME = "张三丰"


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@dataclass
class November:
    """The scripted month; letters as in the table in :func:`november`."""

    staff: dict[str, Staff]
    residents: dict[str, Resident]
    c: dict[str, Complaint]
    now: datetime  # when the daily summary is taken


async def _submit(app: App, clock: ManualClock, when: datetime, resident: Resident | None, **kw: object) -> Complaint:
    clock.set(when)
    kw.setdefault("urgency", Urgency.GENERAL)
    kw.setdefault("text", "问题描述")
    new = NewComplaint(resident_id=resident.id if resident else None, **kw)  # type: ignore[arg-type]
    # Complaints without a resident are registered by the desk (来电/来访), here the system.
    by = resident.as_actor() if resident else Actor.system()
    return await app.complaints.submit(new, by=by)


async def _act(app: App, clock: ManualClock, when: datetime, number: str, action: str, by: Staff | Resident) -> Complaint:
    clock.set(when)
    return await app.complaints.act(number, action, by=by.as_actor())


async def _follow_up(app: App, clock: ManualClock, when: datetime, number: str, by: Resident,
                     solved: bool, rating: int | None) -> Complaint:
    clock.set(when)
    return await app.complaints.follow_up(number, by=by.as_actor(), solved=solved, rating=rating)


@pytest.fixture
async def november(app: App, clock: ManualClock) -> November:
    """Complaints registered in November 2026 (Shanghai), what happens to them, and when.

    | id | category    | urgency            | story                                                  |
    | G  | parking*    | general            | before any staff exist: never assigned, overdue        |
    | A  | maintenance | emergency          | resolved in 6 h, 回访 solved ★5 → closed on time       |
    | B  | maintenance | general            | resolved 2 h late, 回访 solved ★4 → closed late        |
    | C  | environment | general            | resolved in 4 h, 回访 solved ★3 → closed on time       |
    | E  | security    | general, angry     | escalated at once; resolved, 回访 not solved → 复核    |
    | F  | other       | general            | withdrawn by the resident                              |
    | D  | environment | general→important  | repeat of C (same resident, 30 days); in progress      |
    | H  | security    | emergency          | resolved in 2 h, no 回访 yet                            |
    (* an administrator-added category, not in CATEGORY_LABELS)
    """
    res: dict[str, Resident] = {}
    for key, tg in (("r1", 1001), ("r2", 1002), ("r3", 1003), ("r4", 1004)):
        res[key] = await app.roster.resident_for_telegram(tg, RESIDENT_NAME if key == "r1" else None)
    contact = Contact(name=RESIDENT_NAME, phone=PHONE)
    c: dict[str, Complaint] = {}

    c["G"] = await _submit(app, clock, at(2, 8), None, category="parking", text=f"车位被占,电话{PHONE}")

    staff: dict[str, Staff] = {}
    for key, tg, name, role in (("wang", 2001, "王师傅", Role.MAINTENANCE), ("li", 2002, "李阿姨", Role.ENVIRONMENT),
                                ("zhao", 2003, "赵保安", Role.SECURITY), ("chen", 2004, "陈主任", Role.SUPERVISOR),
                                ("zhou", 2005, "客服小周", Role.SERVICE)):
        staff[key] = await app.roster.add_staff(telegram_id=tg, name=name, role=role, phone="13900001111")
    wang, li, zhao = staff["wang"], staff["li"], staff["zhao"]

    c["A"] = await _submit(app, clock, at(2, 10), res["r1"], category="maintenance", urgency=Urgency.EMERGENCY,
                           text=f"电梯困人,请联系{PHONE}", contact=contact)
    await _act(app, clock, at(2, 10, 5), c["A"].number, "accept", wang)
    await _act(app, clock, at(2, 16), c["A"].number, "resolve", wang)
    c["A"] = await _follow_up(app, clock, at(2, 17), c["A"].number, res["r1"], True, 5)

    c["B"] = await _submit(app, clock, at(3, 10), res["r2"], category="maintenance", contact=contact)
    late = c["B"].resolve_by + timedelta(hours=2)
    await _act(app, clock, late - timedelta(hours=1), c["B"].number, "accept", wang)
    await _act(app, clock, late, c["B"].number, "resolve", wang)
    c["B"] = await _follow_up(app, clock, late + timedelta(hours=1), c["B"].number, res["r2"], True, 4)

    c["C"] = await _submit(app, clock, at(9, 10), res["r1"], category="environment", contact=contact)
    await _act(app, clock, at(9, 11), c["C"].number, "accept", li)
    await _act(app, clock, at(9, 14), c["C"].number, "resolve", li)
    c["C"] = await _follow_up(app, clock, at(9, 15), c["C"].number, res["r1"], True, 3)

    c["E"] = await _submit(app, clock, at(10, 10), res["r3"], category="security", emotion="angry", contact=contact)
    await _act(app, clock, at(10, 11), c["E"].number, "accept", zhao)
    await _act(app, clock, at(10, 12), c["E"].number, "resolve", zhao)
    c["E"] = await _follow_up(app, clock, at(10, 13), c["E"].number, res["r3"], False, None)

    c["F"] = await _submit(app, clock, at(16, 10), res["r2"], category="other")
    c["F"] = await _act(app, clock, at(16, 11), c["F"].number, "withdraw", res["r2"])

    c["D"] = await _submit(app, clock, at(20, 10), res["r1"], category="environment", contact=contact)
    await _act(app, clock, at(20, 11), c["D"].number, "accept", li)

    # Escalations around the summary's 24-hour window (now = Nov 25 09:00).
    c["E"] = await _act(app, clock, at(24, 8, 30), c["E"].number, "escalate", staff["chen"])  # 24.5 h before
    c["D"] = await _act(app, clock, at(24, 12), c["D"].number, "escalate", li)  # inside

    c["H"] = await _submit(app, clock, at(24, 20), res["r4"], category="security", urgency=Urgency.EMERGENCY)
    await _act(app, clock, at(24, 20, 10), c["H"].number, "accept", zhao)
    c["H"] = await _act(app, clock, at(24, 22), c["H"].number, "resolve", zhao)

    now = at(25, 9)
    clock.set(now)
    return November(staff=staff, residents=res, c=c, now=now)


def _row(report: MonthlyReport, category: str) -> MonthlyRow:
    return next(r for r in report.rows if r.category == category)


# ---- the scenario is what the tests think it is -------------------------------------------------


async def test_scenario_states(november: November) -> None:
    c = november.c
    assert [c[k].status for k in "GABCEFDH"] == [
        Status.SUBMITTED, Status.CLOSED, Status.CLOSED, Status.CLOSED, Status.REVIEW, Status.WITHDRAWN,
        Status.IN_PROGRESS, Status.RESOLVED]
    assert c["D"].is_repeat and c["D"].urgency is Urgency.IMPORTANT
    assert c["E"].escalation_level == 2 and c["E"].resolved_at is None and c["E"].satisfied is False
    assert c["B"].resolved_at is not None and c["B"].resolved_at > c["B"].resolve_by
    assert c["A"].resolved_at is not None and c["A"].resolved_at <= c["A"].resolve_by


# ---- monthly -------------------------------------------------------------------------------------


async def test_monthly_figures(app: App, november: November) -> None:
    c = november.c
    async with app.sessions() as session:
        report = await monthly_report(session, app.policy.tz, year=2026, month=11)

    assert [r.category for r in report.rows] == [
        "environment", "security", "maintenance", "staff_attitude", "other", "parking"]
    assert [r.label for r in report.rows] == ["环境卫生", "安全秩序", "设施维修", "服务态度", "其他", "parking"]

    b_hours = (c["B"].resolved_at - c["B"].created_at).total_seconds() / 3600  # type: ignore[operator]
    m = _row(report, "maintenance")
    assert (m.received, m.closed, m.closed_on_time, m.resolved) == (2, 2, 1, 2)
    assert m.on_time_rate == 0.5
    assert m.mean_handling_hours == pytest.approx((6 + b_hours) / 2, abs=1e-3)
    assert (m.answered, m.satisfied, m.satisfaction_rate) == (2, 2, 1.0)
    assert (m.repeats, m.emergencies) == (0, 1)

    e = _row(report, "environment")
    assert (e.received, e.closed, e.closed_on_time, e.on_time_rate) == (2, 1, 1, 1.0)
    assert e.mean_handling_hours == pytest.approx(4.0, abs=1e-3)
    assert (e.answered, e.satisfied, e.satisfaction_rate) == (1, 0, 0.0)  # ★3 is not satisfied
    assert (e.repeats, e.emergencies) == (1, 0)

    s = _row(report, "security")
    assert (s.received, s.closed, s.on_time_rate) == (2, 0, None)  # nothing closed: no rate, not 0 %
    assert s.resolved == 1 and s.mean_handling_hours == pytest.approx(2.0, abs=1e-3)  # E is under review
    assert (s.answered, s.satisfied, s.emergencies) == (1, 0, 1)

    o = _row(report, "other")
    assert (o.received, o.closed, o.resolved, o.answered) == (1, 0, 0, 0)
    assert o.mean_handling_hours is None and o.satisfaction_rate is None
    assert _row(report, "staff_attitude") == MonthlyRow("staff_attitude", "服务态度")
    assert _row(report, "parking").received == 1

    t = report.total
    assert t.label == "合计"
    assert (t.received, t.closed, t.closed_on_time, t.resolved, t.answered, t.satisfied) == (8, 3, 2, 4, 4, 2)
    assert t.on_time_rate == pytest.approx(2 / 3)
    assert t.mean_handling_hours == pytest.approx((6 + b_hours + 4 + 2) / 4, abs=1e-3)
    assert t.satisfaction_rate == 0.5
    assert (t.repeats, t.emergencies) == (1, 2)


async def test_month_boundaries_in_local_time(app: App, clock: ManualClock) -> None:
    """Months are cut at Shanghai midnight, not UTC midnight."""
    for when in (at(31, 23, 59, month=10), at(1, 0, 0), at(30, 23, 30), at(1, 0, 10, month=12)):
        await _submit(app, clock, when, None, category="other")
    async with app.sessions() as session:
        counts = {m: (await monthly_report(session, app.policy.tz, year=2026, month=m)).total.received
                  for m in (10, 11, 12)}
    assert counts == {10: 1, 11: 2, 12: 1}
    async with app.sessions() as session:  # the policy works as well as its zone, positionally too
        assert (await monthly_report(session, app.policy, 2026, 11)).total.received == 2
    start, end = month_bounds(2026, 11, SHANGHAI)
    assert start == datetime(2026, 10, 31, 16, tzinfo=UTC) and end == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert month_bounds(2026, 12, SHANGHAI)[1] == datetime(2026, 12, 31, 16, tzinfo=UTC)


async def test_empty_month_is_valid_everywhere(app: App) -> None:
    async with app.sessions() as session:
        report = await monthly_report(session, app.policy.tz, year=2026, month=8)
    assert report.is_empty and len(report.rows) == 5
    assert all(r.received == 0 and r.on_time_rate is None for r in [*report.rows, report.total])
    text = render_monthly(report)
    assert "本月没有登记投诉" in text and "<pre>" in text and "合计" in text
    from openpyxl import load_workbook
    ws = load_workbook(io.BytesIO(monthly_xlsx(report))).active
    assert ws["A1"].value == "顾客投诉分类统计表(2026年8月)"
    assert [ws.cell(r, 1).value for r in range(4, 10)] == ["环境卫生", "安全秩序", "设施维修", "服务态度", "其他", "合计"]
    assert ws["B9"].value == 0 and ws["E9"].value is None
    _assert_png(monthly_png(report))


async def test_render_monthly_html_table_lines_up(app: App, november: November) -> None:
    async with app.sessions() as session:
        report = await monthly_report(session, app.policy.tz, year=2026, month=11)
    text = render_monthly(report)
    assert text.startswith("<b>顾客投诉分类统计表(2026年11月)</b>")
    pre = re.search(r"<pre>(.*)</pre>", text, re.S)
    assert pre is not None
    lines = pre.group(1).split("\n")
    assert len(lines) == 1 + 1 + 6 + 1 + 1  # header, rule, six categories, rule, total
    assert len({display_width(line) for line in lines}) == 1, lines  # every line equally wide
    assert lines[0].split() == ["类别", "受理", "结案", "按时", "时长", "满意", "重复", "紧急"]
    assert lines[2].split()[:3] == ["环境卫生", "2", "1"]
    assert lines[-1].split() == ["合计", "8", "3", "67%", lines[-1].split()[4], "50%", "1", "2"]
    assert "安全秩序" in text and " - " in lines[3]  # security: no closes → "-" not "0%"

    plain = render_monthly(report, html=False)
    assert "<" not in plain and "共受理 8 件,结案 3 件" in plain


def test_render_monthly_escapes_html() -> None:
    row = MonthlyRow("a<b&c", "a<b&c", received=1)
    report = MonthlyReport(2026, 11, "Asia/Shanghai", *month_bounds(2026, 11, SHANGHAI), rows=[row],
                           total=reports._total([row]))
    text = render_monthly(report)
    assert "a&lt;b&amp;c" in text and "a<b" not in text


async def test_monthly_xlsx(app: App, november: November) -> None:
    from openpyxl import load_workbook

    async with app.sessions() as session:
        report = await monthly_report(session, app.policy.tz, year=2026, month=11)
    ws = load_workbook(io.BytesIO(monthly_xlsx(report))).active
    assert ws.title == "2026-11"
    assert ws["A1"].value == "顾客投诉分类统计表(2026年11月)" and ws["A1"].font.bold
    assert "A1:J1" in {str(r) for r in ws.merged_cells.ranges}
    assert [c.value for c in ws[3]] == ["投诉类别", "受理数", "结案数", "按时结案数", "按时结案率",
                                        "平均处理时长(小时)", "回访答复数", "满意率", "重复投诉", "紧急投诉"]
    rows = {ws.cell(r, 1).value: [c.value for c in ws[r]] for r in range(4, 11)}
    assert rows["设施维修"][1:5] == [2, 2, 1, 0.5]
    assert rows["环境卫生"][1:] == [2, 1, 1, 1.0, 4.0, 1, 0.0, 1, 0]
    assert rows["安全秩序"][4] is None  # no closes: blank, not 0 %
    assert rows["parking"][1] == 1
    total = rows["合计"]
    assert total[1:4] == [8, 3, 2] and total[4] == pytest.approx(2 / 3) and total[7] == 0.5
    assert total[8:] == [1, 2]
    assert ws["E10"].number_format == "0.0%" and ws["H4"].number_format == "0.0%"
    assert ws["F4"].number_format == "0.0" and ws["J10"].font.bold
    assert ws.column_dimensions["A"].width >= 10 and ws.column_dimensions["F"].width >= 20
    assert any(str(ws.cell(r, 1).value).startswith("满意率:") for r in range(11, ws.max_row + 1))


# ---- chart ---------------------------------------------------------------------------------------


def _assert_png(data: bytes) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.format == "PNG"
        assert 900 <= img.width <= 3000 and 700 <= img.height <= 2000, img.size


def test_cjk_font_covers_category_names() -> None:
    from fontTools.ttLib import TTFont

    font = find_cjk_font()
    cmap = TTFont(font.path, fontNumber=font.index, lazy=True).getBestCmap()
    assert all(ord(ch) in cmap for ch in "环境卫生安全秩序设施维修服务态度其他顾客投诉分类统计表满意率")


async def test_monthly_png_draws_chinese_without_missing_glyphs(app: App, november: November) -> None:
    async with app.sessions() as session:
        report = await monthly_report(session, app.policy.tz, year=2026, month=11)
    with warnings.catch_warnings():
        # matplotlib warns "Glyph … missing from font(s)" when it draws a box instead of a character.
        warnings.filterwarnings("error", message=r".*[Gg]lyph.*missing")
        data = monthly_png(report)
    _assert_png(data)


def test_missing_cjk_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib import font_manager

    monkeypatch.setattr(reports, "_cjk_font", None)
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [
        e for e in font_manager.fontManager.ttflist if e.name not in reports.CJK_FONT_FAMILIES])
    monkeypatch.setattr(reports, "_fc_match", lambda: None)
    with pytest.raises(CJKFontMissing, match="中文字体"):
        find_cjk_font()


# ---- daily ---------------------------------------------------------------------------------------


async def test_daily_summary(app: App, november: November) -> None:
    c, now = november.c, november.now
    async with app.sessions() as session:
        summary = await daily_summary(session, now)

    assert summary.open_by_status == {Status.SUBMITTED: 1, Status.ASSIGNED: 0, Status.IN_PROGRESS: 1,
                                      Status.REVIEW: 1}
    assert summary.open_total == 3
    # G (never assigned) and E (under review with the supervisor) are past resolve_by; D is not yet.
    assert [o.number for o in summary.overdue] == [c["G"].number, c["E"].number]
    g, e = summary.overdue
    assert g.category_label == "parking" and g.assignee_name is None and g.status is Status.SUBMITTED
    assert g.hours_overdue == pytest.approx((now - c["G"].resolve_by).total_seconds() / 3600)
    assert e.category_label == "安全秩序" and e.assignee_name == "陈主任" and e.escalation_level == 2
    assert e.hours_overdue == pytest.approx((now - c["E"].resolve_by).total_seconds() / 3600)
    assert e.hours_overdue > 24 * 10

    # Only D's escalation (Nov 24 12:00) is inside the last 24 hours; E's at 08:30 is 24.5 h old.
    assert [(x.number, x.level, x.reason) for x in summary.escalations] == [(c["D"].number, 1, "manual")]
    assert summary.escalations[0].status is Status.IN_PROGRESS

    text = render_daily(summary, app.policy.tz)
    assert "<b>每日投诉逾期汇总</b>" in text and "截至 2026年11月25日 09:00" in text
    assert "未结投诉</b>:共 3 件" in text and "复核中 1" in text
    assert f"<code>{c['G'].number}</code> parking" in text and "处理人:未分派" in text
    assert f"逾期 {e.hours_overdue:.1f} 小时" in text and "处理人:陈主任" in text
    assert f"11月24日 12:00 <code>{c['D'].number}</code> 环境卫生 → 客服主任(人工上报)" in text


async def test_daily_summary_never_shows_resident_data(app: App, november: November) -> None:
    async with app.sessions() as session:
        summary = await daily_summary(session, november.now)
    for text in (render_daily(summary, app.policy.tz), render_daily(summary, app.policy.tz, html=False),
                 repr(summary)):
        for secret in (PHONE, MASKED, "5678", RESIDENT_NAME, "13900001111", "电话", "电梯困人"):
            assert secret not in text


async def test_daily_summary_of_a_quiet_day(app: App) -> None:
    async with app.sessions() as session:
        quiet = await daily_summary(session, at(25, 9))
    text = render_daily(quiet, app.policy.tz)
    assert "共 0 件" in text and "暂无逾期投诉" in text and "近24小时没有服务上移" in text


async def test_daily_summary_capped_and_naive_now(app: App, november: November) -> None:
    async with app.sessions() as session:
        capped = await daily_summary(session, november.now)
    short = render_daily(capped, app.policy.tz, max_items=1)
    assert "另有 1 件逾期投诉未列出" in short
    with pytest.raises(ValueError):
        async with app.sessions() as session:
            await daily_summary(session, datetime(2026, 11, 25, 9))  # naive: refused


# ---- command line --------------------------------------------------------------------------------


async def test_report_daily_command(app: App, november: November, capsys: pytest.CaptureFixture[str]) -> None:
    assert await report_daily_command(app, argparse.Namespace()) == 0
    out = capsys.readouterr().out
    assert out.startswith("每日投诉逾期汇总\n截至 2026年11月25日 09:00")
    assert "<" not in out and november.c["G"].number in out and PHONE not in out


async def test_report_monthly_command(app: App, november: November, clock: ManualClock, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    xlsx, png = tmp_path / "stats.xlsx", tmp_path / "stats.png"
    args = argparse.Namespace(month="2026-11", xlsx=str(xlsx), png=str(png))
    assert await report_monthly_command(app, args) == 0
    out = capsys.readouterr().out
    assert out.startswith("顾客投诉分类统计表(2026年11月)") and "<pre>" not in out
    assert f"已保存 Excel 文件:{xlsx}" in out and f"已保存统计图:{png}" in out
    assert xlsx.read_bytes()[:2] == b"PK"
    _assert_png(png.read_bytes())

    clock.set(at(2, 9, month=12))  # no --month: last month
    assert await report_monthly_command(app, argparse.Namespace(month=None, xlsx=None, png=None)) == 0
    assert "(2026年11月)" in capsys.readouterr().out

    with pytest.raises(ReportUsageError, match="YYYY-MM"):
        await report_monthly_command(app, argparse.Namespace(month="2026-13", xlsx=None, png=None))
    assert issubclass(ReportUsageError, ValueError)


def test_parse_and_previous_month() -> None:
    assert parse_month("2026-11") == (2026, 11) and parse_month(" 2026-3 ") == (2026, 3)
    for bad in ("2026/11", "2026-00", "2026-13", "11-2026", "", "abcd-ef"):
        with pytest.raises(ValueError):
            parse_month(bad)
    assert previous_month(datetime(2026, 1, 1, 0, 30, tzinfo=SHANGHAI), SHANGHAI) == (2025, 12)
    # 2026-03-31 20:00 UTC is already April 1st in Shanghai: last month is March.
    assert previous_month(datetime(2026, 3, 31, 20, tzinfo=UTC), SHANGHAI) == (2026, 3)
