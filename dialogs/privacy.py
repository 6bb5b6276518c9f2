"""个人信息保护: /mydata sends a resident everything stored about them; /forget deletes it after a
confirmation. Statistics keep the complaints, anonymised (see ``ComplaintService.forget_resident``).
"""

from __future__ import annotations

import json

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardRemove,
)

from bot.container import App
from dialogs import texts


class PrivacyAction(CallbackData, prefix="pv"):
    """forget_yes | forget_no; ``user`` is whom the card was made for: a copied button is refused."""

    action: str
    user: int


NOTHING_STORED = "我们没有保存您的个人信息。"
EXPORT_CAPTION = ("这是我们保存的关于您的全部信息(JSON 格式):个人资料、投诉及处理进度、照片编号和回访评价。"
                  "如需删除,请发送 /forget。")
CONFIRM_FORGET = ("确定要删除您的个人信息吗?\n"
                  "• 将删除您的姓名、手机号及与本账号的关联,正在填写的内容和待发送的通知也一并删除;\n"
                  "• 您的投诉将匿名保留,仅用于统计,之后无法再查看进度或回访;\n"
                  "• 此操作无法撤销。")
FORGOTTEN = ("您的个人信息已删除,{n} 条投诉已匿名化,仅用于统计。感谢您的信任。"
             "如需再次使用,直接发送文字即可。")
KEPT = "已取消,您的信息未做任何改动。"


def make_router() -> Router:
    router = Router(name="privacy")
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(on_mydata, Command("mydata"))
    router.message.register(on_forget, Command("forget"))
    router.callback_query.register(on_forget_button, PrivacyAction.filter())
    return router


async def on_mydata(message: Message, app: App) -> None:
    assert message.from_user is not None
    data = await app.complaints.export_resident_data(message.from_user.id)
    if data is None:
        await message.answer(NOTHING_STORED)
        return
    body = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    await message.answer_document(BufferedInputFile(body, filename="wuye-mydata.json"), caption=EXPORT_CAPTION)


async def on_forget(message: Message) -> None:
    assert message.from_user is not None
    uid = message.from_user.id
    await message.answer(CONFIRM_FORGET, reply_markup=InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="确认删除", callback_data=PrivacyAction(action="forget_yes", user=uid).pack()),
        InlineKeyboardButton(text="不删除", callback_data=PrivacyAction(action="forget_no", user=uid).pack()),
    ]]))


async def on_forget_button(query: CallbackQuery, callback_data: PrivacyAction, state: FSMContext,
                           app: App) -> None:
    message = query.message if isinstance(query.message, Message) else None
    if callback_data.user != query.from_user.id or message is None:
        # Made for someone else (copied, forged) or too old to edit: nobody's data is touched.
        await query.answer(texts.STALE_BUTTON, show_alert=True)
        return
    if callback_data.action == "forget_no":
        await query.answer()
        await message.edit_text(KEPT)
        return
    if callback_data.action != "forget_yes":
        await query.answer(texts.STALE_BUTTON, show_alert=True)
        return
    count = await app.complaints.forget_resident(query.from_user.id)
    await state.clear()
    await query.answer("已删除")
    await message.edit_text(NOTHING_STORED if count is None else FORGOTTEN.format(n=count))
    # The main menu's keyboard showed "我的投诉": there is nothing left to show.
    await message.answer("如有新的问题,随时直接发送文字描述即可。", reply_markup=ReplyKeyboardRemove())
