"""The resident's 回访: solved or not, 1–5 stars, an optional comment. Bad answers go to 复核."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.container import App
from complaints.model import DomainError, Status
from dialogs import texts
from dialogs.middlewares import Person
from dialogs.staff_views import FollowUpAction, stars_keyboard


class FollowUpComment(StatesGroup):
    waiting = State()


def make_router() -> Router:
    router = Router(name="follow-up")
    router.callback_query.register(on_follow_up, FollowUpAction.filter())
    router.message.register(on_comment, FollowUpComment.waiting, F.text, ~F.text.startswith("/"))
    return router


async def on_follow_up(query: CallbackQuery, callback_data: FollowUpAction, state: FSMContext, app: App,
                       person: Person) -> None:
    resident = await person.resident()
    message = query.message if isinstance(query.message, Message) else None
    number = callback_data.number
    try:
        complaint = await app.complaints.get(number)
    except DomainError:
        complaint = None
    if complaint is None or complaint.resident_id != resident.id or message is None:
        await query.answer(texts.NOT_YOURS, show_alert=True)
        return
    actor = resident.as_actor()
    try:
        if callback_data.action == "solved":
            if complaint.status is not Status.RESOLVED:
                raise DomainError("这条回访已完成,感谢您的反馈。")
            await query.answer()
            await message.edit_text(f"感谢反馈!请为投诉 {number} 的处理打分:", reply_markup=stars_keyboard(number))
        elif callback_data.action == "unsolved":
            await app.complaints.follow_up(number, by=actor, solved=False)
            await query.answer()
            await message.edit_text(f"非常抱歉问题还没有解决。投诉 {number} 已转客服主任复核,"
                                    "会由其他同事重新跟进。您可以直接回复文字补充情况。")
            await state.set_state(FollowUpComment.waiting)
            await state.set_data({"number": number})
        elif callback_data.action == "rate" and 1 <= callback_data.value <= 5:
            result = await app.complaints.follow_up(number, by=actor, solved=True, rating=callback_data.value)
            await query.answer("感谢评价!")
            stars = "⭐" * callback_data.value
            if result.status is Status.REVIEW:
                text = (f"您的评价:{stars}。很抱歉没能让您满意,投诉 {number} 已转客服主任复核。"
                        "如愿意,请直接回复文字告诉我们哪里做得不好。")
            else:
                text = f"您的评价:{stars}。感谢您的支持,投诉 {number} 已结案。如有其他意见,可直接回复文字。"
            skip = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
                text="不用了", callback_data=FollowUpAction(action="skip", number=number).pack())]])
            await message.edit_text(text, reply_markup=skip)
            await state.set_state(FollowUpComment.waiting)
            await state.set_data({"number": number})
        elif callback_data.action == "skip":
            await state.clear()
            await query.answer("好的,感谢!")
            await message.edit_reply_markup(reply_markup=None)
        else:
            await query.answer(texts.STALE_BUTTON, show_alert=True)
    except DomainError as exc:
        await query.answer(str(exc)[:200], show_alert=True)


async def on_comment(message: Message, state: FSMContext, app: App, person: Person) -> None:
    data = await state.get_data()
    await state.clear()
    resident = await person.resident()
    comment = (message.text or "").strip()[:2000]
    try:
        await app.complaints.comment_follow_up(data.get("number", ""), by=resident.as_actor(), comment=comment)
    except DomainError as exc:
        await message.answer(texts.q(str(exc)))
        return
    await message.answer("已记录您的意见,谢谢!")
