"""The sandbox page in a real headless Chromium: a complaint from first message to 结案, then the
manager's 09:00 summary and the Excel report, with a screenshot of each step.

Needs Playwright (the Python package; its own driver, no downloaded browser) and Debian's
chromium (``scripts/ensure-browser`` installs it; ``.ci/run`` calls it). Without them it skips.
Screenshots: ``test-artifacts/sandbox/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.settings import Settings
from complaints.model import Status

CHROMIUM = os.environ.get("WUYE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "sandbox"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT = 20_000  # ms: a 2-core CI machine runs the bot, the emulator and Chromium at once

async_api = pytest.importorskip(
    "playwright.async_api",
    reason="Playwright not installed: pip install playwright==1.65.2 (see requirements-dev.lock)")
if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
    if os.environ.get("WUYE_REQUIRE_BROWSER"):  # .ci/run: a missing browser is a failure there
        raise RuntimeError(f"Chromium not found at {CHROMIUM} although WUYE_REQUIRE_BROWSER is set")
    pytest.skip(f"Chromium not found at {CHROMIUM}: run scripts/ensure-browser (apt-get install chromium)",
                allow_module_level=True)

expect = async_api.expect

RESIDENT, WORKER, MANAGER = 1001, 2001, 2006


@pytest.fixture
async def sandbox(tmp_path: Path, classifier: object) -> AsyncIterator[object]:
    from sandbox.runtime import Sandbox

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}", bot_token=None,
                        policy_file=None, routing_file=None, rules_file=None, _env_file=None)
    sb = Sandbox(settings, classifier=classifier)
    await sb.start(host="127.0.0.1", port=0)
    try:
        yield sb
    finally:
        await sb.stop()


@pytest.fixture
async def page(sandbox: object) -> AsyncIterator[object]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN",
                                            accept_downloads=True)
        context.set_default_timeout(TIMEOUT)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            await context.close()
            await browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def chat(page, user_id: int):  # type: ignore[no-untyped-def]
    return page.locator(f'[data-chat="{user_id}"]')


def bot_message(page, user_id: int, text: str):  # type: ignore[no-untyped-def]
    return chat(page, user_id).locator(".row.in", has_text=text).last


async def show(page, user_id: int, name: str) -> None:  # type: ignore[no-untyped-def]
    """Bring a chat into view (its tab), then screenshot the page."""
    await page.locator(f'.tab[data-tab="{user_id}"]').click()
    await page.wait_for_timeout(500)  # the smooth scroll
    await page.screenshot(path=str(ARTIFACTS / name))


async def type_in(page, user_id: int, text: str) -> None:  # type: ignore[no-untyped-def]
    box = chat(page, user_id).locator(".composer input")
    await box.fill(text)
    await box.press("Enter")


async def test_complaint_to_closed_and_the_managers_summary(sandbox, page) -> None:  # type: ignore[no-untyped-def]
    await page.goto(sandbox.url)
    await expect(bot_message(page, RESIDENT, "欢迎")).to_be_visible()
    await expect(bot_message(page, WORKER, "王师傅")).to_be_visible()
    await page.screenshot(path=str(ARTIFACTS / "01-start.png"))

    # The resident describes the problem, shares the phone number and submits.
    await type_in(page, RESIDENT, "3栋2单元楼道灯坏了,晚上很黑")
    resident = chat(page, RESIDENT)
    await expect(bot_message(page, RESIDENT, "联系方式")).to_be_visible()
    await resident.locator(".rkb button", has_text="分享手机号").click()
    card = bot_message(page, RESIDENT, "请确认您的投诉")
    await expect(card).to_contain_text("3号楼")
    await show(page, RESIDENT, "02-confirm.png")
    await card.get_by_role("button", name="✅ 提交").click()
    done = bot_message(page, RESIDENT, "已登记,投诉编号")
    await expect(done).to_be_visible()
    number = re.search(r"TS\d{8}-\d{4}", await done.inner_text()).group(0)  # type: ignore[union-attr]
    await show(page, RESIDENT, "03-submitted.png")

    # The maintenance worker accepts it, then resolves it with a note.
    assignment = bot_message(page, WORKER, number)
    await expect(assignment).to_contain_text("新投诉")
    await assignment.get_by_role("button", name="✅ 接单").click()
    await expect(bot_message(page, RESIDENT, "已由工作人员受理")).to_be_visible()
    await assignment.get_by_role("button", name="🏁 处理完成").click()
    await expect(bot_message(page, WORKER, "处理结果")).to_be_visible()
    await type_in(page, WORKER, "已更换楼道灯泡")
    await expect(bot_message(page, WORKER, "已标记处理完成")).to_be_visible()
    await show(page, WORKER, "04-staff-resolved.png")

    # The resident confirms and rates it: 结案.
    ask = bot_message(page, RESIDENT, "解决了吗")
    await expect(ask).to_contain_text("已更换楼道灯泡")
    await ask.get_by_role("button", name="👍 已解决").click()
    stars = bot_message(page, RESIDENT, "请为投诉")
    await stars.get_by_role("button", name="⭐⭐⭐⭐⭐").click()
    await expect(bot_message(page, RESIDENT, "已结案")).to_be_visible()
    await show(page, RESIDENT, "05-rated-closed.png")
    complaint = await sandbox.app.complaints.get(number)
    assert complaint.status is Status.CLOSED and complaint.rating == 5

    # Fast-forward to 09:00: the manager's daily summary arrives.
    before = await page.locator("#clock-time").inner_text()
    await page.get_by_role("button", name="到 09:00").click()
    await expect(page.locator("#clock-time")).to_contain_text("09:00")
    assert before != await page.locator("#clock-time").inner_text()
    summary = bot_message(page, MANAGER, "每日投诉逾期汇总")
    await expect(summary).to_be_visible()
    await expect(summary.locator("b").first).to_have_text("每日投诉逾期汇总")  # HTML bold, rendered
    await show(page, MANAGER, "06-manager-summary.png")

    # The monthly statistics as an Excel file that downloads with its Chinese name.
    await chat(page, MANAGER).locator(".cmd-btn").click()
    await chat(page, MANAGER).locator('.cmd-menu button[data-cmd="/stats"]').click()
    excel = chat(page, MANAGER).locator(".file", has_text=".xlsx")
    await expect(excel).to_be_visible(timeout=60_000)  # the chart takes a few seconds on CI
    async with page.expect_download() as download_info:
        await excel.click()
    download = await download_info.value
    assert download.suggested_filename.startswith("顾客投诉分类统计表") and download.suggested_filename.endswith(".xlsx")
    saved = ARTIFACTS / "monthly.xlsx"
    await download.save_as(str(saved))
    assert saved.read_bytes()[:2] == b"PK"  # a zip: an .xlsx workbook
    await show(page, MANAGER, "07-manager-excel.png")

    # The same page on a phone: one chat at a time, tabs on top.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.reload()
    await expect(bot_message(page, RESIDENT, "已结案")).to_be_attached()
    await show(page, RESIDENT, "08-phone-resident.png")
    await show(page, WORKER, "09-phone-staff.png")
    box = await chat(page, WORKER).bounding_box()
    assert box is not None and abs(box["width"] - 390) < 2 and abs(box["x"]) < 2  # fills the screen
