"""``wuye report daily`` and ``wuye report monthly``: the manager reports in a shell.

The text goes to stdout as plain text (no HTML tags); ``--xlsx`` / ``--png`` write the files.
``bot/cli.py`` wires these in; a bad ``--month`` raises :class:`ReportUsageError` (a ValueError)
with a Chinese message, for the CLI to print as a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from notifier.reports import (
    MonthlyReport,
    daily_summary,
    monthly_png,
    monthly_report,
    monthly_xlsx,
    parse_month,
    previous_month,
    render_daily,
    render_monthly,
)


class ReportUsageError(ValueError):
    """Bad arguments (a malformed month): the caller exits with a usage error."""


async def report_daily_command(app: Any, args: argparse.Namespace) -> int:
    """Print the daily overdue summary as of the application's clock."""
    async with app.sessions() as session:
        summary = await daily_summary(session, now=app.clock())
    print(render_daily(summary, app.policy.tz, html=False))
    return 0


async def report_monthly_command(app: Any, args: argparse.Namespace) -> int:
    """Print the monthly statistics; write ``args.xlsx`` / ``args.png`` when given.

    ``args.month`` is ``"YYYY-MM"``, or ``None`` for last month (local time, the policy's zone).
    """
    tz = app.policy.tz
    month_arg = getattr(args, "month", None)
    if month_arg is None:
        year, month = previous_month(app.clock(), tz)
    else:
        try:
            year, month = parse_month(month_arg)
        except ValueError as exc:
            raise ReportUsageError(str(exc)) from None
    async with app.sessions() as session:
        report = await monthly_report(session, tz, year=year, month=month)
    print(render_monthly(report, html=False))
    # Files after the text: a missing font still leaves the manager the numbers on screen.
    xlsx_path = getattr(args, "xlsx", None)
    if xlsx_path:
        await asyncio.to_thread(_save, xlsx_path, monthly_xlsx, report)
        print(f"已保存 Excel 文件:{xlsx_path}")
    png_path = getattr(args, "png", None)
    if png_path:
        await asyncio.to_thread(_save, png_path, monthly_png, report)
        print(f"已保存统计图:{png_path}")
    return 0


def _save(path: str, render: Callable[[MonthlyReport], bytes], report: MonthlyReport) -> None:
    # In a worker thread: drawing the chart takes a moment and file I/O blocks.
    Path(path).write_bytes(render(report))


__all__ = ["ReportUsageError", "report_daily_command", "report_monthly_command"]
