"""Managers' reports on the emulator: the 09:00 overdue summary, /overdue, /stats with PNG and Excel."""

from __future__ import annotations

import io
from datetime import datetime

from complaints.timers import TimerKind
from tests.conftest import SHANGHAI
from tests.staff_helpers import PHONE, fast_desk, file, resident  # noqa: F401  (fast_desk: the ``desk`` fixture)


async def test_daily_summary_at_nine_to_every_manager(desk, clock) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    _, boss = await desk.staff(601, "赵主任", "supervisor")
    _, first = await desk.staff(701, "钱经理", "manager")
    _, second = await desk.staff(702, "孙经理", "manager")
    owner = await resident(desk, 1201, "业主丁")
    late = await file(desk, owner, f"2号楼水管爆了,电话{PHONE}", urgency="emergency")
    calm = await file(desk, owner, "草坪该修剪了")
    card = await worker.wait_for(lambda m: late in m.text)
    assert PHONE not in card.text and "138****5678" in card.text  # typed into the text: masked too
    await worker.press(card, "✅ 接单")
    calm_card = await worker.wait_for(lambda m: calm in m.text)
    await worker.press(calm_card, "✅ 接单")

    async with desk.app.uow() as uow:
        planned = [t for t in await uow.timers.pending() if t.kind == TimerKind.DAILY_SUMMARY]
    assert [t.due_at.astimezone(SHANGHAI) for t in planned] == [datetime(2026, 11, 26, 9, 0, tzinfo=SHANGHAI)]

    clock.set(datetime(2026, 11, 26, 8, 59, tzinfo=SHANGHAI))
    await desk.tick()
    assert not [m for m in first.bot_messages if "每日投诉逾期汇总" in m.text]
    clock.set(datetime(2026, 11, 26, 12, 0, tzinfo=SHANGHAI))  # the emergency is now 2 h overdue
    await desk.tick()
    await boss.wait_for(lambda m: late in m.text and "服务上移" in m.text)
    await first.wait_for(lambda m: "每日投诉逾期汇总" in m.text)

    clock.set(datetime(2026, 11, 27, 9, 0, tzinfo=SHANGHAI))
    await desk.tick()
    for manager in (first, second):
        summary = await manager.wait_for(lambda m: "每日投诉逾期汇总" in m.text and "27日" in m.text)
        assert "处理中 2" in summary.text
        assert late in summary.text and "王师傅" in summary.text and "逾期 23.0 小时" in summary.text
        assert "近24小时服务上移" in summary.text and "超时未处理完成" in summary.text
        assert calm not in summary.text.split("近24小时")[0].split("逾期投诉")[1]  # not overdue
        assert PHONE not in summary.text and "5678" not in summary.text and "水管爆了" not in summary.text
    assert not [m for m in worker.bot_messages if "每日投诉逾期汇总" in m.text]
    assert not [m for m in boss.bot_messages if "每日投诉逾期汇总" in m.text]
    summaries = [c for c in desk.emu.calls("sendMessage") if "每日投诉逾期汇总" in str(c.params.get("text"))]
    assert len(summaries) == 4  # two days × two managers, each once

    await first.send_command("overdue")
    overdue = await first.wait_for(lambda m: "每日投诉逾期汇总" in m.text and late in m.text)
    assert PHONE not in overdue.text


async def test_monthly_statistics_as_message_chart_and_excel(desk, clock) -> None:
    from openpyxl import load_workbook

    _, worker = await desk.staff(501, "王师傅", "maintenance")
    _, manager = await desk.staff(701, "钱经理", "manager")
    owner = await resident(desk, 1202, "业主戊")
    number = await file(desk, owner)
    await file(desk, owner, "垃圾桶满了没人清", category="environment")
    card = await worker.wait_for(lambda m: number in m.text)
    await worker.press(card, "✅ 接单")

    await manager.send_command("stats", "2026-13")
    await manager.wait_for(lambda m: "YYYY-MM" in m.text)
    await manager.send_command("stats", "2026-11")
    # Drawing the chart and the workbook takes a while on a busy machine: generous timeouts.
    table = await manager.wait_for(lambda m: "顾客投诉分类统计表" in m.text, timeout=20)
    assert "设施维修" in table.text and "环境卫生" in table.text
    chart = await manager.wait_for(lambda m: m.photo, timeout=20)
    assert "统计图" in (chart.caption or "")
    sheet = await manager.wait_for(lambda m: m.document, timeout=20)
    assert sheet.document["file_name"].endswith("2026-11.xlsx")

    png = desk.emu.files[chart.photo[-1]["file_id"]].data
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    workbook = load_workbook(io.BytesIO(desk.emu.files[sheet.document["file_id"]].data))
    cells = [str(c.value) for row in workbook.active.iter_rows() for c in row if c.value is not None]
    assert "顾客投诉分类统计表" in cells[0] and "设施维修" in cells and "环境卫生" in cells
    assert all(PHONE not in c for c in cells)


async def test_summary_time_is_configurable_and_a_change_moves_the_plan(desk, clock) -> None:
    _, manager = await desk.staff(701, "钱经理", "manager")
    desk.app.settings.daily_summary_time = "07:30"  # an administrator changed it and restarted
    due = await desk.background.plan_daily_summary()
    assert due == datetime(2026, 11, 26, 7, 30, tzinfo=SHANGHAI)
    async with desk.app.uow() as uow:
        planned = [t for t in await uow.timers.pending() if t.kind == TimerKind.DAILY_SUMMARY]
    assert [t.due_at for t in planned] == [due]

    clock.set(datetime(2026, 11, 26, 7, 30, tzinfo=SHANGHAI))
    assert await desk.tick() == 1
    await manager.wait_for(lambda m: "每日投诉逾期汇总" in m.text)
    async with desk.app.uow() as uow:
        planned = [t for t in await uow.timers.pending() if t.kind == TimerKind.DAILY_SUMMARY]
    assert [t.due_at for t in planned] == [datetime(2026, 11, 27, 7, 30, tzinfo=SHANGHAI)]
