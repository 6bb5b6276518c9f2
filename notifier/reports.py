"""Manager reports: the daily overdue summary and the monthly 《顾客投诉分类统计表》.

Calling convention (read-only; the caller owns the session)::

    async with app.sessions() as session:
        summary = await daily_summary(session, now=app.clock())
        report = await monthly_report(session, app.policy.tz, year=2026, month=11)
    text = render_daily(summary, app.policy.tz)      # HTML for Telegram
    html = render_monthly(report)                    # HTML for Telegram
    data = monthly_xlsx(report)                      # .xlsx bytes
    png = monthly_png(report)                        # chart, PNG bytes

The functions take an ``AsyncSession`` (not the ``App``) so a scheduler job, a bot handler and the
command line can share one session, and a ``tzinfo`` (``app.policy.tz``; the ``DeadlinePolicy``
itself is accepted too): the reports only need the local zone to cut months and print times.

Every figure is aggregated in SQL on indexed columns (``complaints.status``, ``.resolve_by``,
``.created_at``, ``complaint_events.at``); no complaint is loaded with its history.

Privacy: the queries never select residents' names, phones, complaint text or free-text notes,
so none of them can reach a summary, whatever staff typed.
"""

from __future__ import annotations

import html
import io
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from complaints.deadlines import DeadlinePolicy
from complaints.model import (
    CATEGORY_LABELS,
    OPEN_STATUSES,
    STATUS_LABELS,
    EventKind,
    Status,
    Urgency,
)
from storage.tables import ComplaintEventRow, ComplaintRow, StaffRow

# Open statuses in lifecycle order, so the summary always lists them the same way.
OPEN_STATUS_ORDER: tuple[Status, ...] = tuple(
    s for s in (Status.SUBMITTED, Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW) if s in OPEN_STATUSES)

ESCALATION_LEVEL_LABELS = {1: "客服主任", 2: "经理"}
ESCALATION_REASON_LABELS = {
    "angry": "业主情绪激动",
    "manual": "人工上报",
    "accept_overdue": "超时未接单",
    "resolve_overdue": "超时未处理完成",
    "overdue": "超时未处理完成",
    "deadline": "超时未处理完成",
    "review": "复核",
}

# A 回访 counts as satisfied from this many stars up (4 = 满意, 5 = 非常满意).
SATISFIED_MIN_RATING = 4


def category_label(code: str) -> str:
    """Chinese name of a category; an administrator-added one is shown by its code."""
    return CATEGORY_LABELS.get(code, code)


def _zone(tz: tzinfo | DeadlinePolicy) -> tzinfo:
    # The policy is accepted too, so a caller holding ``app.policy`` cannot pass the wrong thing.
    return tz.tz if isinstance(tz, DeadlinePolicy) else tz


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else ""


def _require_aware(dt: datetime, name: str) -> None:
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        raise ValueError(f"{name} must be an aware datetime")


# =================================================================================================
# Daily overdue summary
# =================================================================================================


@dataclass(frozen=True)
class OverdueItem:
    """An open complaint past its resolve_by. No resident data: number, category and staff only."""

    number: str
    category: str
    category_label: str
    status: Status
    urgency: Urgency
    assignee_name: str | None  # None: not assigned to anyone (waiting for triage or review routing)
    resolve_by: datetime  # aware UTC
    hours_overdue: float  # wall-clock hours from resolve_by to the summary's ``now``
    escalation_level: int


@dataclass(frozen=True)
class EscalationItem:
    """One 服务上移 (ESCALATED event) in the summary's window."""

    number: str
    category: str
    category_label: str
    at: datetime  # aware UTC
    level: int  # 1 supervisor, 2 manager
    reason: str  # code as recorded: angry, manual, …
    status: Status  # the complaint's status now, so a manager sees whether it is still open

    @property
    def level_label(self) -> str:
        return ESCALATION_LEVEL_LABELS.get(self.level, f"{self.level}级")

    @property
    def reason_label(self) -> str:
        return ESCALATION_REASON_LABELS.get(self.reason, self.reason or "未注明")


@dataclass(frozen=True)
class DailySummary:
    """What managers read at 09:00.

    Statuses are the database's current ones (a summary is a snapshot, not a reconstruction of
    the past); ``now`` decides what is overdue and which escalations are recent.

    * ``open_by_status``: every open status (受理, 分派, 处理中, 复核) with its count, zeros included.
    * ``overdue``: every open complaint with ``resolve_by < now``, most overdue first.
    * ``escalations``: ESCALATED events with ``since < at <= now`` (``since = now − 24 h``), oldest first.
    """

    now: datetime
    since: datetime
    open_by_status: dict[Status, int]
    overdue: list[OverdueItem] = field(default_factory=list)
    escalations: list[EscalationItem] = field(default_factory=list)

    @property
    def open_total(self) -> int:
        return sum(self.open_by_status.values())


async def daily_summary(session: AsyncSession, now: datetime,
                        window: timedelta = timedelta(hours=24)) -> DailySummary:
    """Collect the daily overdue summary as of ``now`` (aware; the caller's clock, e.g. ``app.clock()``)."""
    _require_aware(now, "now")
    now = now.astimezone(UTC)
    since = now - window
    c = ComplaintRow
    open_codes = [str(s) for s in OPEN_STATUS_ORDER]

    counts = {s: 0 for s in OPEN_STATUS_ORDER}
    for status, n in await session.execute(
            select(c.status, func.count()).where(c.status.in_(open_codes)).group_by(c.status)):
        counts[Status(status)] = int(n)

    # Drive the search from ix_complaints_status (few complaints are open; almost all are past
    # their deadline). SQLite would walk ix_complaints_resolve_by instead, to skip the sort: a
    # unary "+" hides that index from its planner. PostgreSQL chooses well on its own.
    resolve_by: ColumnElement[datetime] = c.resolve_by
    if _dialect(session) == "sqlite":
        resolve_by = UnaryExpression(c.resolve_by, operator=custom_op("+"), type_=c.resolve_by.type)
    # Outer join: an overdue complaint nobody holds is exactly what a manager must see.
    overdue_rows = await session.execute(
        select(c.number, c.category, c.status, c.urgency, c.resolve_by, c.escalation_level, StaffRow.name)
        .outerjoin(StaffRow, StaffRow.id == c.assignee_id)
        .where(c.status.in_(open_codes), resolve_by < now)
        .order_by(resolve_by, c.number))
    overdue = [
        OverdueItem(number=number, category=category, category_label=category_label(category),
                    status=Status(status), urgency=Urgency(urgency), assignee_name=name,
                    resolve_by=resolve_by, hours_overdue=(now - resolve_by).total_seconds() / 3600,
                    escalation_level=int(level or 0))
        for number, category, status, urgency, resolve_by, level, name in overdue_rows
    ]

    e = ComplaintEventRow
    escalation_rows = await session.execute(
        select(c.number, c.category, c.status, e.at, e.data)
        .join(c, c.id == e.complaint_id)
        .where(e.at > since, e.at <= now, e.kind == str(EventKind.ESCALATED))
        .order_by(e.at, e.id))
    escalations = []
    for number, category, status, at, data in escalation_rows:
        data = data or {}
        escalations.append(EscalationItem(
            number=number, category=category, category_label=category_label(category), at=at,
            level=int(data.get("level") or 0), reason=str(data.get("reason") or ""), status=Status(status)))

    return DailySummary(now=now, since=since, open_by_status=counts, overdue=overdue, escalations=escalations)


def _local(dt: datetime, tz: tzinfo) -> str:
    local = dt.astimezone(tz)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def _hours(value: float) -> str:
    return f"{value:.1f}"


def render_daily(summary: DailySummary, tz: tzinfo | DeadlinePolicy, *, html: bool = True,
                 max_items: int | None = None) -> str:
    """The summary as a Chinese message: Telegram HTML by default, plain text with ``html=False``.

    ``max_items`` caps each list (a Telegram message holds 4096 characters); the rest is counted
    in a closing line. ``None`` lists everything.
    """
    tz = _zone(tz)
    fmt = _Fmt(html)
    now = summary.now.astimezone(tz)
    lines = [fmt.bold("每日投诉逾期汇总"), f"截至 {now.year}年{now.month}月{now.day}日 {now:%H:%M}", ""]

    parts = " · ".join(f"{STATUS_LABELS[s]} {n}" for s, n in summary.open_by_status.items())
    lines.append(f"{fmt.bold('未结投诉')}:共 {summary.open_total} 件")
    lines.append(parts)
    lines.append("")

    lines.append(f"{fmt.bold('逾期投诉')}:{len(summary.overdue)} 件")
    if not summary.overdue:
        lines.append("暂无逾期投诉。")
    shown = summary.overdue if max_items is None else summary.overdue[:max_items]
    for i, item in enumerate(shown, 1):
        who = fmt.text(item.assignee_name) if item.assignee_name else "未分派"
        extra = f" · 已上移至{ESCALATION_LEVEL_LABELS.get(item.escalation_level, '')}" \
            if item.escalation_level else ""
        lines.append(f"{i}. {fmt.code(item.number)} {fmt.text(item.category_label)}"
                     f"({item.urgency.label},{item.status.label})"
                     f" · 处理人:{who} · 逾期 {_hours(item.hours_overdue)} 小时{extra}")
    if len(shown) < len(summary.overdue):
        lines.append(f"……另有 {len(summary.overdue) - len(shown)} 件逾期投诉未列出。")
    lines.append("")

    lines.append(f"{fmt.bold('近24小时服务上移')}:{len(summary.escalations)} 次")
    if not summary.escalations:
        lines.append("近24小时没有服务上移。")
    shown_esc = summary.escalations if max_items is None else summary.escalations[:max_items]
    for esc in shown_esc:
        lines.append(f"· {_local(esc.at, tz)} {fmt.code(esc.number)} {fmt.text(esc.category_label)}"
                     f" → {esc.level_label}({fmt.text(esc.reason_label)}),当前{esc.status.label}")
    if len(shown_esc) < len(summary.escalations):
        lines.append(f"……另有 {len(summary.escalations) - len(shown_esc)} 次未列出。")
    return "\n".join(lines)


class _Fmt:
    """Markup for Telegram HTML, or nothing for the shell."""

    def __init__(self, use_html: bool) -> None:
        self.html = use_html

    def text(self, value: str) -> str:
        return html.escape(value, quote=False) if self.html else value

    def bold(self, value: str) -> str:
        return f"<b>{self.text(value)}</b>" if self.html else value

    def code(self, value: str) -> str:
        return f"<code>{self.text(value)}</code>" if self.html else value


# =================================================================================================
# Monthly 《顾客投诉分类统计表》
# =================================================================================================

REPORT_TITLE = "顾客投诉分类统计表"

METRIC_DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("受理数", "当月(按本地时区)登记的投诉件数,含已撤销、转外部的。"),
    ("结案数", "受理数中截至统计时状态为「已结案」的件数。"),
    ("按时结案率", "结案数中按时的比例:处理完成时间(转外部结案的取结案时间)不晚于承诺完成时间"
                   "(经延期告知业主的,以新时间为准)。"),
    ("平均处理时长", "受理数中已处理完成的投诉,从登记到处理完成的平均小时数(自然时间)。"),
    ("满意率", f"受理数中已答复回访的投诉里,答复「已解决」且评分不低于{SATISFIED_MIN_RATING}星"
               "(或未评分)的比例;复核后再次回访的以最近一次为准。"),
    ("重复投诉", "受理数中属于重复投诉(同一业主30天内同类投诉)的件数。"),
    ("紧急投诉", "受理数中紧急程度为「紧急」的件数。"),
)


@dataclass(frozen=True)
class MonthlyRow:
    """One category's figures for the month (or the total row, ``category == ""``).

    Over the complaints *received* (registered) in the month, local time:

    * ``received``: how many were registered, whatever became of them.
    * ``closed``: of those, how many are in status closed (结案) when the report runs.
    * ``closed_on_time``: of the closed, how many were finished not later than ``resolve_by``
      (finished = ``resolved_at``; for one closed after a referral elsewhere, ``closed_at``).
      An agreed delay (延期) moves ``resolve_by``: the resident was told the new date.
    * ``resolved`` / ``handling_hours``: how many have a ``resolved_at`` (resolved or closed after a
      resolution; one under review has none until resolved again) and the sum of
      ``resolved_at − created_at`` in wall-clock hours over them.
    * ``answered`` / ``satisfied``: how many answered 回访, and of those how many said solved with
      ≥ 4 stars or without stars (solved and no complaint). The latest answer counts.
    * ``repeats``: ``is_repeat`` (same resident and category within 30 days).
    * ``emergencies``: urgency emergency (紧急).
    """

    category: str
    label: str
    received: int = 0
    closed: int = 0
    closed_on_time: int = 0
    resolved: int = 0
    handling_hours: float = 0.0
    answered: int = 0
    satisfied: int = 0
    repeats: int = 0
    emergencies: int = 0

    @property
    def on_time_rate(self) -> float | None:
        """closed_on_time / closed, 0‥1; ``None`` when nothing was closed."""
        return self.closed_on_time / self.closed if self.closed else None

    @property
    def mean_handling_hours(self) -> float | None:
        return self.handling_hours / self.resolved if self.resolved else None

    @property
    def satisfaction_rate(self) -> float | None:
        """satisfied / answered, 0‥1; ``None`` when no 回访 was answered."""
        return self.satisfied / self.answered if self.answered else None


@dataclass(frozen=True)
class MonthlyReport:
    year: int
    month: int
    tz_name: str
    start: datetime  # aware UTC, inclusive: local midnight of the 1st
    end: datetime  # aware UTC, exclusive: local midnight of the next month's 1st
    rows: list[MonthlyRow]
    total: MonthlyRow

    @property
    def period_label(self) -> str:
        return f"{self.year}年{self.month}月"

    @property
    def title(self) -> str:
        return f"{REPORT_TITLE}({self.period_label})"

    @property
    def is_empty(self) -> bool:
        return self.total.received == 0


def month_bounds(year: int, month: int, tz: tzinfo) -> tuple[datetime, datetime]:
    """The month as a UTC half-open interval, cut at local midnight (Asia/Shanghai by default)."""
    if not 1 <= month <= 12 or not 1 <= year <= 9998:
        raise ValueError(f"月份无效:{year}-{month:02d}")
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


_MONTH_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})\s*$")


def parse_month(value: str) -> tuple[int, int]:
    """``"2026-11"`` → ``(2026, 11)``; anything else raises ValueError with a Chinese message."""
    m = _MONTH_RE.match(value or "")
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1:
        raise ValueError(f"月份格式应为 YYYY-MM(例如 2026-11),收到 {value!r}")
    return int(m.group(1)), int(m.group(2))


def previous_month(now: datetime, tz: tzinfo) -> tuple[int, int]:
    """The month before ``now``'s local month: what a report on the 1st is about."""
    local = now.astimezone(tz)
    return (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)


def _hours_between(session: AsyncSession, a: Any, b: Any) -> ColumnElement[Any]:
    """``b − a`` in hours, in SQL. SQLite stores UTC text, PostgreSQL timestamptz."""
    if _dialect(session) == "sqlite":
        return (func.julianday(b) - func.julianday(a)) * 24.0
    return cast(func.extract("epoch", b - a), Float) / 3600.0


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def monthly_report(session: AsyncSession, tz: tzinfo | DeadlinePolicy, year: int,
                         month: int) -> MonthlyReport:
    """Figures per category for complaints registered in ``year-month`` (local time ``tz``).

    One grouped query over ``ix_complaints_created_at``; see :class:`MonthlyRow` and
    :data:`METRIC_DEFINITIONS` for what each figure means. Every standard category has a row
    (zeros in a quiet month); categories added by an administrator follow, labelled by code.
    """
    tz = _zone(tz)
    start, end = month_bounds(year, month, tz)
    c = ComplaintRow
    closed = c.status == str(Status.CLOSED)
    finished_at = func.coalesce(c.resolved_at, c.closed_at)
    resolved = c.resolved_at.is_not(None)
    stmt = (
        select(
            c.category,
            func.count(),
            _count(closed),
            _count(and_(closed, finished_at <= c.resolve_by)),
            _count(resolved),
            func.coalesce(func.sum(case((resolved, _hours_between(session, c.created_at, c.resolved_at)),
                                        else_=None)), 0.0),
            _count(c.satisfied.is_not(None)),
            _count(and_(c.satisfied.is_(True),
                        (c.rating >= SATISFIED_MIN_RATING) | c.rating.is_(None))),
            _count(c.is_repeat.is_(True)),
            _count(c.urgency == str(Urgency.EMERGENCY)),
        )
        .where(c.created_at >= start, c.created_at < end)
        .group_by(c.category)
    )
    found: dict[str, MonthlyRow] = {}
    for cat, received, n_closed, on_time, n_resolved, hours, answered, satisfied, repeats, emerg in (
            await session.execute(stmt)):
        found[cat] = MonthlyRow(
            category=cat, label=category_label(cat), received=int(received), closed=int(n_closed),
            closed_on_time=int(on_time), resolved=int(n_resolved), handling_hours=float(hours or 0.0),
            answered=int(answered), satisfied=int(satisfied), repeats=int(repeats), emergencies=int(emerg))
    rows = [found.pop(str(code), MonthlyRow(category=str(code), label=label))
            for code, label in CATEGORY_LABELS.items()]
    rows.extend(found[code] for code in sorted(found))
    return MonthlyReport(year=year, month=month, tz_name=str(getattr(tz, "key", tz)), start=start, end=end,
                         rows=rows, total=_total(rows))


def _total(rows: Sequence[MonthlyRow]) -> MonthlyRow:
    # Rates and the mean come from summed counts, so the total is weighted, not a mean of means.
    return MonthlyRow(
        category="", label="合计",
        received=sum(r.received for r in rows), closed=sum(r.closed for r in rows),
        closed_on_time=sum(r.closed_on_time for r in rows), resolved=sum(r.resolved for r in rows),
        handling_hours=sum(r.handling_hours for r in rows), answered=sum(r.answered for r in rows),
        satisfied=sum(r.satisfied for r in rows), repeats=sum(r.repeats for r in rows),
        emergencies=sum(r.emergencies for r in rows))


# ---- text / HTML table ---------------------------------------------------------------------------


def display_width(text: str) -> int:
    """Columns ``text`` takes in a monospace font: CJK (wide/fullwidth) characters take two."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, *, left: bool) -> str:
    gap = " " * max(0, width - display_width(text))
    return text + gap if left else gap + text


def _pct(value: float | None) -> str:
    # ASCII "-" for "no data": an em dash is drawn one or two columns wide depending on the font.
    return "-" if value is None else f"{value * 100:.0f}%"


def _num1(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


TABLE_HEADERS = ("类别", "受理", "结案", "按时", "时长", "满意", "重复", "紧急")
TABLE_LEGEND = "按时=按时结案率 时长=平均处理时长(小时) 满意=满意率 -=无数据"


def _table_cells(row: MonthlyRow) -> list[str]:
    return [row.label, str(row.received), str(row.closed), _pct(row.on_time_rate),
            _num1(row.mean_handling_hours), _pct(row.satisfaction_rate), str(row.repeats),
            str(row.emergencies)]


def monthly_table(report: MonthlyReport) -> str:
    """The table as monospace text: the label column left-aligned, numbers right-aligned."""
    body = [_table_cells(r) for r in report.rows]
    total = _table_cells(report.total)
    everything = [list(TABLE_HEADERS), *body, total]
    widths = [max(display_width(r[i]) for r in everything) for i in range(len(TABLE_HEADERS))]

    def line(cells: list[str]) -> str:
        return " ".join(_pad(cell, widths[i], left=i == 0) for i, cell in enumerate(cells)).rstrip()

    rule = "-" * (sum(widths) + len(widths) - 1)
    return "\n".join([line(list(TABLE_HEADERS)), rule, *(line(r) for r in body), rule, line(total)])


def _monthly_lines(report: MonthlyReport) -> tuple[str, str]:
    t = report.total
    if report.is_empty:
        summary = "本月没有登记投诉。"
    else:
        hours = "暂无" if t.mean_handling_hours is None else f"{t.mean_handling_hours:.1f} 小时"
        on_time = "暂无" if t.on_time_rate is None else _pct(t.on_time_rate)
        satisfaction = "暂无" if t.satisfaction_rate is None else _pct(t.satisfaction_rate)
        summary = (f"共受理 {t.received} 件,结案 {t.closed} 件,按时结案率 {on_time},"
                   f"平均处理时长 {hours},满意率 {satisfaction}。")
    return f"统计期间:{report.period_label}(按 {report.tz_name} 时间登记)", summary


def render_monthly(report: MonthlyReport, *, html: bool = True) -> str:
    """The statistics as a Chinese message: Telegram HTML (a ``<pre>`` table) or plain text."""
    fmt = _Fmt(html)
    period, summary = _monthly_lines(report)
    table = monthly_table(report)
    table = f"<pre>{fmt.text(table)}</pre>" if html else table
    return "\n".join([fmt.bold(report.title), fmt.text(period), fmt.text(summary), table,
                      fmt.text(TABLE_LEGEND)])


# ---- Excel ---------------------------------------------------------------------------------------

XLSX_HEADERS = ("投诉类别", "受理数", "结案数", "按时结案数", "按时结案率", "平均处理时长(小时)",
                "回访答复数", "满意率", "重复投诉", "紧急投诉")


def _xlsx_values(row: MonthlyRow) -> list[Any]:
    return [row.label, row.received, row.closed, row.closed_on_time, row.on_time_rate,
            None if row.mean_handling_hours is None else round(row.mean_handling_hours, 2),
            row.answered, row.satisfaction_rate, row.repeats, row.emergencies]


def monthly_xlsx(report: MonthlyReport) -> bytes:
    """The table as an .xlsx workbook: title, period, header, one row per category, totals, notes.

    Rates are stored as fractions formatted ``0.0%``; a figure without data is left blank.
    """
    from openpyxl import Workbook  # lazy: openpyxl is only needed when a file is asked for
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = f"{report.year:04d}-{report.month:02d}"
    ncols = len(XLSX_HEADERS)
    last = get_column_letter(ncols)

    ws.append([report.title])
    ws.merge_cells(f"A1:{last}1")
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 24
    period, summary = _monthly_lines(report)
    ws.append([f"{period}  {summary}"])
    ws.merge_cells(f"A2:{last}2")

    thin = Side(style="thin", color="999999")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    ws.append(list(XLSX_HEADERS))
    header_row = ws.max_row
    for cell in ws[header_row]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = border

    formats = {5: "0.0%", 6: "0.0", 8: "0.0%"}  # 1-based columns
    for row in [*report.rows, report.total]:
        ws.append(_xlsx_values(row))
        for col, cell in enumerate(ws[ws.max_row], 1):
            cell.border = border
            if col in formats:
                cell.number_format = formats[col]
            if row is report.total:
                cell.font = Font(bold=True)
                cell.fill = PatternFill("solid", fgColor="F2F2F2")
    total_row = ws.max_row

    ws.append([])
    ws.append(["指标说明"])
    ws.cell(ws.max_row, 1).font = Font(bold=True)
    notes_from = ws.max_row + 1
    for name, text in METRIC_DEFINITIONS:
        ws.append([f"{name}:{text}"])
        ws.merge_cells(start_row=ws.max_row, start_column=1, end_row=ws.max_row, end_column=ncols)
    ws.append(["空白表示没有可计算的数据(例如当月没有结案或没有回访)。"])
    ws.merge_cells(start_row=ws.max_row, start_column=1, end_row=ws.max_row, end_column=ncols)
    for r in range(notes_from, ws.max_row + 1):
        ws.cell(r, 1).alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[r].height = 30

    # Widths from the header and data (not the merged title/notes), CJK counted double.
    for col in range(1, ncols + 1):
        texts = [str(XLSX_HEADERS[col - 1])]
        texts += [str(ws.cell(r, col).value) for r in range(header_row + 1, total_row + 1)
                  if ws.cell(r, col).value is not None and col not in formats]
        ws.column_dimensions[get_column_letter(col)].width = max(10, max(map(display_width, texts)) + 2)
    ws.freeze_panes = ws.cell(header_row + 1, 2)
    ws.print_title_rows = f"{header_row}:{header_row}"

    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# ---- chart ---------------------------------------------------------------------------------------

# Families known to cover simplified Chinese, best first.
CJK_FONT_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "Noto Sans CJK JP",
    "Noto Sans CJK TC", "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei",
    "PingFang SC", "Hiragino Sans GB", "SimHei", "Droid Sans Fallback", "AR PL UMing CN",
)
_PROBE = "顾客投诉分类统计表环境卫生安全秩序设施维修服务态度其他受理结案"


class CJKFontMissing(RuntimeError):
    """No font with Chinese glyphs: the chart would show empty boxes instead of words."""


@dataclass(frozen=True)
class CJKFont:
    family: str
    path: str
    index: int


_cjk_font: CJKFont | None = None
_cjk_charmap: dict[int, int] | None = None


def _covers(path: str, index: int, text: str) -> bool:
    from matplotlib import ft2font

    try:
        font = ft2font.FT2Font(path, face_index=index)
    except (OSError, RuntimeError, ValueError):
        return False
    return all(font.get_char_index(ord(ch)) for ch in set(text))


def find_cjk_font() -> CJKFont:
    """A font matplotlib can draw Chinese with: by family name, else what fontconfig suggests.

    Raises :class:`CJKFontMissing` (with the fix) when there is none. The result is cached;
    a failure is not, so installing the font fixes a running process.
    """
    global _cjk_font
    if _cjk_font is not None:
        return _cjk_font
    from matplotlib import font_manager

    entries = [e for e in font_manager.fontManager.ttflist if e.name in CJK_FONT_FAMILIES]
    # Regular weight first: the bold faces share the family name.
    entries.sort(key=lambda e: (CJK_FONT_FAMILIES.index(e.name), abs(_weight(e.weight) - 400)))
    for entry in entries:
        if _covers(entry.fname, entry.index, _PROBE):
            _cjk_font = CJKFont(entry.name, entry.fname, entry.index)
            return _cjk_font
    # matplotlib's font cache may predate the font's installation: ask fontconfig directly.
    found = _fc_match()
    if found is not None and _covers(found[0], found[1], _PROBE):
        font_manager.fontManager.addfont(found[0])
        for entry in font_manager.fontManager.ttflist:
            if entry.fname == found[0] and entry.index == found[1]:
                _cjk_font = CJKFont(entry.name, entry.fname, entry.index)
                return _cjk_font
    raise CJKFontMissing(
        "找不到中文字体,无法生成统计图(否则中文会显示为方框)。请安装 Noto Sans CJK:"
        "运行 scripts/ensure-cjk-font,或 apt-get install fonts-noto-cjk。")


def _weight(value: Any) -> int:
    if isinstance(value, int):
        return value
    return {"light": 300, "normal": 400, "regular": 400, "medium": 500, "bold": 700}.get(str(value), 400)


def _fc_match() -> tuple[str, int] | None:
    exe = shutil.which("fc-match")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-f", "%{file}\n%{index}\n", "sans-serif:lang=zh-cn"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.splitlines()
    if len(lines) < 2 or not lines[0]:
        return None
    try:
        return lines[0], int(lines[1] or 0)
    except ValueError:
        return None


def _check_glyphs(font: CJKFont, texts: Iterable[str]) -> None:
    """Every non-ASCII character we are about to draw must be in the font: no silent boxes."""
    global _cjk_charmap
    from matplotlib import ft2font

    if _cjk_charmap is None:
        _cjk_charmap = ft2font.FT2Font(font.path, face_index=font.index).get_charmap()
    missing = sorted({ch for t in texts for ch in t if ord(ch) > 0x7F and ord(ch) not in _cjk_charmap})
    if missing:
        raise CJKFontMissing(f"字体 {font.family} 缺少这些字符:{''.join(missing)}")


SERIES_COUNTS = (("受理", "received", "#4472C4"), ("结案", "closed", "#70AD47"),
                 ("重复投诉", "repeats", "#FFC000"), ("紧急投诉", "emergencies", "#C00000"))
SERIES_RATES = (("按时结案率", "on_time_rate", "#5B9BD5"), ("满意率", "satisfaction_rate", "#ED7D31"))


def monthly_png(report: MonthlyReport, *, dpi: int = 120) -> bytes:
    """A bar chart of the table: counts per category above, on-time and satisfaction % below.

    Drawn with matplotlib's Agg canvas and the object API (no pyplot, no global state but the
    font cache), so it is safe to call from a worker thread. Raises :class:`CJKFontMissing`.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    font = find_cjk_font()
    labels = [r.label for r in report.rows]
    period, summary = _monthly_lines(report)
    texts = [report.title, period, summary, "件数", "比例(%)", "本月无投诉", "无回访", "无结案",
             *labels, *(s[0] for s in SERIES_COUNTS), *(s[0] for s in SERIES_RATES)]
    _check_glyphs(font, texts)

    rc = {"font.family": "sans-serif", "font.sans-serif": [font.family, "DejaVu Sans"],
          "axes.unicode_minus": False}
    with matplotlib.rc_context(rc):
        width = max(9.0, 1.5 * len(labels) + 3)
        fig = Figure(figsize=(width, 8.0), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        fig.suptitle(report.title, fontsize=16, fontweight="bold")
        top, bottom = fig.subplots(2, 1, height_ratios=[3, 2])
        xs = list(range(len(labels)))

        bar = 0.8 / len(SERIES_COUNTS)
        for i, (name, attr, color) in enumerate(SERIES_COUNTS):
            values = [getattr(r, attr) for r in report.rows]
            bars = top.bar([x - 0.4 + bar * (i + 0.5) for x in xs], values, bar, label=name, color=color)
            top.bar_label(bars, labels=[str(v) if v else "" for v in values], fontsize=8, padding=1)
        top.set_ylabel("件数")
        top.set_xticks(xs, labels)
        top.legend(loc="upper right", ncols=len(SERIES_COUNTS), fontsize=9)
        top.set_title(f"{period}\n{summary}", fontsize=10)
        top.yaxis.get_major_locator().set_params(integer=True)
        peak = max((getattr(r, a) for r in report.rows for _, a, _ in SERIES_COUNTS), default=0)
        top.set_ylim(0, max(1, peak) * 1.25)
        if report.is_empty:
            top.text(0.5, 0.5, "本月无投诉", transform=top.transAxes, ha="center", va="center",
                     fontsize=18, color="#888888")

        bar = 0.8 / len(SERIES_RATES)
        for i, (name, attr, color) in enumerate(SERIES_RATES):
            rates = [getattr(r, attr) for r in report.rows]
            values = [0.0 if v is None else v * 100 for v in rates]
            bars = bottom.bar([x - 0.4 + bar * (i + 0.5) for x in xs], values, bar, label=name, color=color)
            empty = "无结案" if attr == "on_time_rate" else "无回访"
            bottom.bar_label(bars, labels=[empty if v is None else f"{v * 100:.0f}%" for v in rates],
                             fontsize=8, padding=1)
        bottom.set_ylabel("比例(%)")
        bottom.set_ylim(0, 119)
        bottom.set_yticks([0, 20, 40, 60, 80, 100])
        bottom.set_xticks(xs, labels)
        bottom.legend(loc="upper right", ncols=len(SERIES_RATES), fontsize=9)
        for ax in (top, bottom):
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
            ax.spines[["top", "right"]].set_visible(False)

        out = io.BytesIO()
        fig.savefig(out, format="png")
    return out.getvalue()


__all__ = [
    "CJKFont",
    "CJKFontMissing",
    "DailySummary",
    "EscalationItem",
    "METRIC_DEFINITIONS",
    "MonthlyReport",
    "MonthlyRow",
    "OverdueItem",
    "daily_summary",
    "find_cjk_font",
    "month_bounds",
    "monthly_png",
    "monthly_report",
    "monthly_table",
    "monthly_xlsx",
    "parse_month",
    "previous_month",
    "render_daily",
    "render_monthly",
]
