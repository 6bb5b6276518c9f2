"""Telegram Bot API emulator: a local HTTP server the real aiogram client polls, plus simulated users.

Usage::

    async with BotAPIEmulator() as emu:
        bot = emu.make_bot()
        user = emu.user(1001, first_name="张三")
        await user.send_text("电梯坏了")
        reply = await user.wait_for_message()
"""

from .faults import FaultInjector, FaultRule
from .markup import EntityParseError, parse_formatted, utf16_len
from .media import make_png
from .server import DEFAULT_TOKEN, ApiError, BotAPIEmulator
from .state import (
    BotAccount,
    CallbackAnswer,
    CallbackQueryRecord,
    CallRecord,
    ChatMessage,
    ChatState,
    StoredFile,
    UserProfile,
)
from .users import SimUser

__all__ = [
    "DEFAULT_TOKEN",
    "ApiError",
    "BotAPIEmulator",
    "BotAccount",
    "CallRecord",
    "CallbackAnswer",
    "CallbackQueryRecord",
    "ChatMessage",
    "ChatState",
    "EntityParseError",
    "FaultInjector",
    "FaultRule",
    "SimUser",
    "StoredFile",
    "UserProfile",
    "make_png",
    "parse_formatted",
    "utf16_len",
]
