"""Typed callback data and the keyboards built from it. Never hand-split a callback string."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from dialogs import texts


class DraftAction(CallbackData, prefix="d"):
    """Buttons on the confirmation card; ``draft`` ties the press to the card it was shown on."""

    action: str  # submit | category | cancel | area | skip
    draft: str
    value: str = ""


class ComplaintAction(CallbackData, prefix="c"):
    """Resident buttons on one complaint: open, add, withdraw, confirm withdraw, done."""

    action: str
    number: str


def main_menu() -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=texts.MENU_COMPLAIN), KeyboardButton(text=texts.MENU_MY)],
            [KeyboardButton(text=texts.MENU_EMERGENCY), KeyboardButton(text=texts.MENU_CONTACT)],
            [KeyboardButton(text=texts.MENU_HELP)],
        ],
        resize_keyboard=True,
        is_persistent=True,
    )


def contact_keyboard() -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=texts.SHARE_PHONE, request_contact=True)],
                  [KeyboardButton(text=texts.ANONYMOUS), KeyboardButton(text=texts.CANCEL)]],
        resize_keyboard=True, one_time_keyboard=True,
    )


def areas_keyboard(draft: str, *, emergency: bool = False) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for area in texts.PUBLIC_AREAS:
        builder.button(text=area, callback_data=DraftAction(action="area", draft=draft, value=area))
    if not emergency:
        builder.button(text="不便提供", callback_data=DraftAction(action="skip", draft=draft))
    builder.adjust(3)
    return builder.as_markup()


def confirm_keyboard(draft: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text="✅ 提交", callback_data=DraftAction(action="submit", draft=draft).pack())],
        [InlineKeyboardButton(text="✏️ 修改类别", callback_data=DraftAction(action="category", draft=draft).pack()),
         InlineKeyboardButton(text="❌ 取消", callback_data=DraftAction(action="cancel", draft=draft).pack())],
    ])


def categories_keyboard(draft: str, categories: dict[str, str]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, label in categories.items():
        builder.button(text=label, callback_data=DraftAction(action="setcat", draft=draft, value=code))
    builder.adjust(2)
    return builder.as_markup()


def my_list_keyboard(numbers: list[str]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for number in numbers:
        builder.button(text=number, callback_data=ComplaintAction(action="open", number=number))
    builder.adjust(2)
    return builder.as_markup()


def details_keyboard(number: str, *, is_open: bool) -> InlineKeyboardMarkup | None:
    if not is_open:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="➕ 补充信息", callback_data=ComplaintAction(action="add", number=number).pack()),
        InlineKeyboardButton(text="↩️ 撤销投诉", callback_data=ComplaintAction(action="withdraw", number=number).pack()),
    ]])


def confirm_withdraw_keyboard(number: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="确定撤销", callback_data=ComplaintAction(action="withdraw_yes", number=number).pack()),
        InlineKeyboardButton(text="不撤销", callback_data=ComplaintAction(action="open", number=number).pack()),
    ]])


def add_info_keyboard(number: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="完成", callback_data=ComplaintAction(action="add_done", number=number).pack()),
    ]])
