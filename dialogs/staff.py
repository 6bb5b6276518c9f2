"""Staff, supervisors and managers: assignment buttons, /tasks, /queue, /overdue, /stats, /join.

Every button names a complaint by number; the service layer checks that the person pressing may
act on it, so a copied or forged button gets the domain's polite refusal, never someone's data.
"""

from __future__ import annotations

import contextlib
import re
from datetime import date, datetime, time
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramForbiddenError
from aiogram.filters import Command, CommandObject, CommandStart, Filter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.container import App
from complaints.model import OPEN_STATUSES, ROLE_LABELS, Attachment, Complaint, DomainError, Role
from complaints.people import Staff
from complaints.views import category_label, local_text
from dialogs import staff_views as sv
from dialogs import texts
from dialogs.middlewares import Person
from dialogs.staff_views import StaffAction


class StaffFlow(StatesGroup):
    resolve_note = State()
    escalate_note = State()
    external_note = State()
    delay_note = State()


class StaffPick(StaffAction, prefix="sp"):  # type: ignore[call-arg]
    """A supervisor picking who gets a complaint; ``action`` carries the staff id."""


class IsStaff(Filter):
    """Passes active staff (optionally of some roles) and hands the handler ``staff``."""

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    async def __call__(self, event: Message | CallbackQuery, person: Person | None = None) -> bool | dict[str, Any]:
        if person is None:  # no user behind the update
            return False
        staff = await person.staff()
        if staff is None or (self.roles and staff.role not in self.roles):
            return False
        return {"staff": staff}


SUPERVISORS = (Role.SUPERVISOR, Role.MANAGER)

STAFF_HELP = ("<b>员工使用说明</b>\n"
              "• 新分派的投诉会推送给您,按钮:接单、联系业主、转派、上报、延期、处理完成、非物业职责。\n"
              "• /tasks 我的待办(按时限排序)\n"
              "• 主管:/queue 全部未结投诉,可改派;经理:/overdue 超时汇总,/stats [YYYY-MM] 月度统计。")

ACTION_DONE = {"accept": "已接单,请尽快联系业主。", "escalate": "已上报客服主任。", "transfer": "已转派。",
               "resolve": "已标记处理完成,系统将通知业主并进行回访。", "external": "已记录转外部,并告知业主。"}

NOT_STAFF = ("此命令仅供物业工作人员使用。如您是新同事,请向主管索取邀请码后发送 /join 邀请码;"
             "业主请发送 /my 查看投诉进度。")
SUPERVISORS_ONLY = "此命令仅限客服主任和经理使用。您的待办请发送 /tasks 查看。"
DELAY_PROMPT = ("请回复新的完成时间和延期原因,原因会告知业主。\n"
                "格式:月-日 时:分 原因,例如:12-03 18:00 等待厂家配件")
STAFF_COMMANDS = ("tasks", "queue", "overdue", "stats")


def make_router() -> Router:
    router = Router(name="staff")
    router.message.register(on_join, Command("join"))

    staff_only = Router(name="staff-only")
    staff_only.message.filter(IsStaff())
    staff_only.callback_query.filter(IsStaff())
    staff_only.message.register(on_start, CommandStart())
    staff_only.message.register(on_help, Command("help"))
    staff_only.message.register(on_tasks, Command("tasks"))
    staff_only.message.register(on_queue, Command("queue"), IsStaff(*SUPERVISORS))
    staff_only.message.register(on_overdue, Command("overdue"), IsStaff(*SUPERVISORS))
    staff_only.message.register(on_stats, Command("stats"), IsStaff(*SUPERVISORS))
    staff_only.message.register(on_cancel, Command("cancel"), StaffFlow())
    staff_only.message.register(on_resolve_note, StaffFlow.resolve_note, F.text | F.photo)
    staff_only.message.register(on_escalate_note, StaffFlow.escalate_note, F.text)
    staff_only.message.register(on_external_note, StaffFlow.external_note, F.text)
    staff_only.message.register(on_delay_note, StaffFlow.delay_note, F.text)
    staff_only.callback_query.register(on_pick, StaffPick.filter())
    staff_only.callback_query.register(on_action, StaffAction.filter())
    router.include_router(staff_only)

    # After the staff handlers: staff commands from anyone else get a polite word instead of the
    # residents' "unknown command"; staff buttons from anyone else do nothing and show nothing.
    others = Router(name="staff-others")
    others.message.register(on_staff_command_denied, Command(*STAFF_COMMANDS))
    others.callback_query.register(on_foreign_button, StaffPick.filter())
    others.callback_query.register(on_foreign_button, StaffAction.filter())
    router.include_router(others)
    return router


async def on_staff_command_denied(message: Message, person: Person | None = None) -> None:
    staff = await person.staff() if person is not None else None
    await message.answer(SUPERVISORS_ONLY if staff is not None else NOT_STAFF)


async def on_foreign_button(query: CallbackQuery) -> None:
    # Answered (so the button stops spinning) with the generic stale-button text: no complaint data.
    await query.answer(texts.STALE_BUTTON)


# ---- commands -----------------------------------------------------------------------------------
async def on_join(message: Message, command: CommandObject, app: App, state: FSMContext) -> None:
    user = message.from_user
    assert user is not None
    code = (command.args or "").strip()
    if not re.fullmatch(r"[0-9A-Za-z]{4,32}", code):
        await message.answer("请发送 /join 加邀请码,例如:/join 1A2B3C4D")
        return
    try:
        staff = await app.roster.redeem_invite(code, telegram_id=user.id, name=user.full_name)
    except DomainError as exc:
        await message.answer(texts.q(str(exc)))
        return
    await state.clear()
    await message.answer(f"欢迎加入,{texts.q(staff.name)}!您的岗位:{ROLE_LABELS[staff.role]}。\n{STAFF_HELP}")


async def on_start(message: Message, staff: Staff, app: App, state: FSMContext) -> None:
    await state.clear()
    await app.roster.mark_reachable(staff.telegram_id)
    await message.answer(f"您好,{texts.q(staff.name)}({ROLE_LABELS[staff.role]})。\n{STAFF_HELP}")


async def on_help(message: Message) -> None:
    await message.answer(STAFF_HELP)


async def on_cancel(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer("已取消。")


async def on_tasks(message: Message, staff: Staff, app: App) -> None:
    complaints = await app.complaints.list(statuses=sorted(OPEN_STATUSES), assignee_id=staff.id)
    await _send_list(message, app, complaints, empty="您目前没有待办投诉。", title="我的待办")


async def on_queue(message: Message, app: App) -> None:
    complaints = await app.complaints.list(statuses=sorted(OPEN_STATUSES), limit=50)
    await _send_list(message, app, complaints, empty="目前没有未结投诉。", title="全部未结投诉")


async def _send_list(message: Message, app: App, complaints: list, *, empty: str, title: str) -> None:
    if not complaints:
        await message.answer(empty)
        return
    now, tz = app.clock(), app.policy.tz
    lines = [f"<b>{title}</b>(共 {len(complaints)} 件,按时限排序)"]
    lines += [sv.task_line(c, tz, now) for c in complaints[:30]]
    await message.answer("\n".join(lines), reply_markup=sv.tasks_keyboard([c.number for c in complaints]))


async def on_overdue(message: Message, app: App) -> None:
    from notifier.reports import daily_summary, render_daily

    async with app.sessions() as session:
        summary = await daily_summary(session, app.clock())
    # Every overdue complaint, in as many messages as it takes.
    for part in sv.split_message(render_daily(summary, app.policy.tz)):
        await message.answer(part)


async def on_stats(message: Message, command: CommandObject, app: App) -> None:
    from notifier.reports import monthly_png, monthly_report, monthly_xlsx, render_monthly

    year, month = _parse_month(command.args, app)
    if year is None:
        await message.answer("月份格式应为 YYYY-MM,例如:/stats 2026-11")
        return
    await message.bot.send_chat_action(message.chat.id, "upload_document")  # type: ignore[union-attr]
    async with app.sessions() as session:
        report = await monthly_report(session, app.policy.tz, year=year, month=month)
    await message.answer(render_monthly(report))
    import asyncio

    png, xlsx = await asyncio.gather(asyncio.to_thread(monthly_png, report), asyncio.to_thread(monthly_xlsx, report))
    await message.answer_photo(BufferedInputFile(png, filename=f"stats-{year}-{month:02d}.png"),
                               caption=f"{year}年{month}月 投诉分类统计图")
    await message.answer_document(BufferedInputFile(xlsx, filename=f"顾客投诉分类统计表-{year}-{month:02d}.xlsx"),
                                  caption="《顾客投诉分类统计表》Excel 文件")


def _parse_month(args: str | None, app: App) -> tuple[int | None, int]:
    if args and args.strip():
        m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", args)
        if not m or not 1 <= int(m.group(2)) <= 12:
            return None, 0
        return int(m.group(1)), int(m.group(2))
    today: date = app.policy.to_local(app.clock()).date()
    return today.year, today.month


# ---- buttons ------------------------------------------------------------------------------------
async def on_action(query: CallbackQuery, callback_data: StaffAction, staff: Staff, app: App,
                    state: FSMContext) -> None:
    number, action = callback_data.number, callback_data.action
    actor = staff.as_actor()
    message = query.message if isinstance(query.message, Message) else None
    try:
        complaint = await app.complaints.get(number)
        if not (complaint.assignee_id == staff.id or actor.is_supervisor or actor.is_desk):
            # Someone else's complaint (an old card, a forged button): nothing of it is shown.
            await query.answer("这件投诉没有分派给您。", show_alert=True)
            return
        if action == "open":
            await query.answer()
            markup = sv.supervisor_keyboard(complaint) if actor.is_supervisor and complaint.assignee_id != staff.id \
                else sv.staff_keyboard(complaint)
            text = sv.assignment_card(complaint, app.policy.tz, resident_name=complaint.contact.name,
                                      review=complaint.status.value == "review")
            await query.message.answer(f"{text}\n状态:{complaint.status.label}", reply_markup=markup)  # type: ignore[union-attr]
            return
        if action == "accept":
            complaint = await app.complaints.act(number, "accept", by=actor)
        elif action == "take":
            complaint = await app.complaints.take(number, by=actor)
            await query.answer("已由您接手处理。")
            return
        elif action == "contact":
            phone = await app.complaints.reveal_contact(number, by=actor)
            await query.answer()
            if message:
                await message.answer(f"业主联系电话:{texts.q(phone)}(查看已记录)。请礼貌沟通,先致歉再了解情况。")
            return
        elif action == "transfer":
            if actor.is_supervisor:
                await query.answer()
                await _offer_people(query, app, complaint.number, complaint.category)
                return
            complaint = await app.complaints.act(number, "transfer", by=actor, note="员工转派")
        elif action in ("escalate", "resolve", "external", "delay"):
            if not complaint.is_open:
                raise DomainError(f"投诉当前状态为「{complaint.status.label}」,无法操作。")
            target = {"escalate": StaffFlow.escalate_note, "resolve": StaffFlow.resolve_note,
                      "external": StaffFlow.external_note, "delay": StaffFlow.delay_note}[action]
            await state.set_state(target)
            await state.set_data({"number": number})
            await query.answer()
            prompt = {"escalate": f"请简要说明上报 {number} 的原因:",
                      "resolve": f"请简要说明 {number} 的处理结果(可附一张照片):",
                      "external": f"请填写建议业主联系的单位及电话(如:供电公司 95598),{number}:",
                      "delay": f"{number} 当前处理时限:{local_text(complaint.resolve_by, app.policy.tz)}。\n"
                               + DELAY_PROMPT}[action]
            if message:
                await message.answer(prompt + "\n发送 /cancel 取消。")
            return
        else:
            await query.answer(texts.STALE_BUTTON, show_alert=True)
            return
    except DomainError as exc:
        await query.answer(str(exc)[:200], show_alert=True)
        return
    await query.answer(ACTION_DONE.get(action, "已完成。"))
    if message:
        await _refresh_buttons(message, complaint, staff)


async def _refresh_buttons(message: Message, complaint: Complaint, staff: Staff) -> None:
    """The card's buttons follow the complaint: none once it is closed or no longer this person's."""
    mine = complaint.assignee_id == staff.id or staff.as_actor().is_supervisor
    markup = sv.staff_keyboard(complaint) if complaint.is_open and mine else None
    old = message.reply_markup.model_dump(exclude_none=True) if message.reply_markup else None
    new = markup.model_dump(exclude_none=True) if markup else None
    if old != new:  # Telegram refuses an edit that changes nothing (400 "message is not modified")
        # Cosmetic: if the person blocked the bot meanwhile, the outbox deals with that, not this.
        with contextlib.suppress(TelegramForbiddenError):
            await message.edit_reply_markup(reply_markup=markup)


async def _offer_people(query: CallbackQuery, app: App, number: str, category: str) -> None:
    people = await app.roster.list_staff(active_only=True)
    role = app.routing.role_for(category)
    people.sort(key=lambda s: (s.role != role, s.role, s.id))
    rows = [[InlineKeyboardButton(text=f"{p.name}({ROLE_LABELS[p.role]})",
                                  callback_data=StaffPick(action=str(p.id), number=number).pack())]
            for p in people[:20]]
    await query.message.answer(f"请选择 {number} 改派给谁(类别:{category_label(category)}):",  # type: ignore[union-attr]
                               reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


async def on_pick(query: CallbackQuery, callback_data: StaffPick, staff: Staff, app: App) -> None:
    actor = staff.as_actor()
    if not actor.is_supervisor or not callback_data.action.isdigit():
        await query.answer(texts.STALE_BUTTON, show_alert=True)
        return
    try:
        await app.complaints.act(callback_data.number, "transfer", by=actor, to_staff_id=int(callback_data.action),
                                 note="主管改派")
    except DomainError as exc:
        await query.answer(str(exc)[:200], show_alert=True)
        return
    await query.answer("已改派。")
    if isinstance(query.message, Message):
        await query.message.edit_text(f"{callback_data.number} 已改派。")


# ---- notes after a button -----------------------------------------------------------------------
async def _finish(message: Message, state: FSMContext, app: App, staff: Staff, action: str,
                  note: str | None, attachments: list[Attachment] | None = None) -> None:
    data = await state.get_data()
    number = data.get("number", "")
    await state.clear()
    try:
        await app.complaints.act(number, action, by=staff.as_actor(), note=note, attachments=attachments)
    except DomainError as exc:
        await message.answer(texts.q(str(exc)))
        return
    await message.answer(f"{number}:{ACTION_DONE[action]}")


async def on_resolve_note(message: Message, state: FSMContext, app: App, staff: Staff) -> None:
    note = (message.text or message.caption or "").strip() or "已处理"
    photos = [Attachment("photo", message.photo[-1].file_id, "处理后照片")] if message.photo else None
    await _finish(message, state, app, staff, "resolve", note[:2000], photos)


async def on_escalate_note(message: Message, state: FSMContext, app: App, staff: Staff) -> None:
    await _finish(message, state, app, staff, "escalate", (message.text or "").strip()[:1000] or None)


async def on_external_note(message: Message, state: FSMContext, app: App, staff: Staff) -> None:
    await _finish(message, state, app, staff, "external", (message.text or "").strip()[:500])


_DELAY = re.compile(r"\s*(?:(\d{4})[-/年.])?(\d{1,2})[-/月.](\d{1,2})日?"
                    r"(?:\s*(\d{1,2})[::点](\d{2})?分?)?\s*[,,;;]?\s*(.*)", re.S)


def parse_delay(text: str, now: datetime, default_time: time) -> tuple[datetime, str] | None:
    """``12-03 18:00 等配件`` → (that moment, local time, "等配件"); the year is the next one that
    makes the date not in the past. None if the text does not start with a date."""
    m = _DELAY.fullmatch(text)
    if not m:
        return None
    year_text, month, day, hour, minute, reason = m.groups()
    at = time(int(hour), int(minute or 0)) if hour is not None else default_time
    years = [int(year_text)] if year_text else [now.year, now.year + 1]
    for year in years:
        try:
            moment = datetime.combine(date(year, int(month), int(day)), at, tzinfo=now.tzinfo)
        except ValueError:
            return None
        if year_text or moment.date() >= now.date():
            return moment, reason.strip()
    return None


async def on_delay_note(message: Message, state: FSMContext, app: App, staff: Staff) -> None:
    text = (message.text or "").strip()
    if text.startswith("/"):
        await message.answer("请先回复新的完成时间和原因,或发送 /cancel 取消。")
        return
    now = app.policy.to_local(app.clock())
    parsed = parse_delay(text, now, app.policy.work_end)
    if parsed is None:
        await message.answer("没有看懂新的完成时间。" + DELAY_PROMPT + "\n发送 /cancel 取消。")
        return
    new_resolve_by, reason = parsed
    if not reason:
        await message.answer("请在时间后写上延期原因,例如:12-03 18:00 等待厂家配件")
        return
    if new_resolve_by <= now:
        await message.answer("新的完成时间应在现在之后,请重新填写。")
        return
    number = (await state.get_data()).get("number", "")
    try:
        complaint = await app.complaints.delay(number, by=staff.as_actor(), new_resolve_by=new_resolve_by,
                                               reason=reason[:300])
    except DomainError as exc:
        await state.clear()
        await message.answer(texts.q(str(exc)))
        return
    await state.clear()
    await message.answer(f"{number}:已延期至 {local_text(complaint.resolve_by, app.policy.tz)},"
                         "已告知业主原因和新的完成时间。")
