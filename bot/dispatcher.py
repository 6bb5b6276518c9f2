"""Builds the bot and the dispatcher: one function, fresh routers, so tests can build many."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import BotCommand

from bot.container import App
from bot.middlewares import CrossProcessIsolation, RetryRequests, StripNulMiddleware, TakeOnceMiddleware
from bot.settings import Settings
from dialogs import follow_up, privacy, residents, staff
from dialogs.middlewares import FloodControlMiddleware, PersonMiddleware, PerUserIsolation, on_error
from storage.fsm import SqlFSMStorage
from storage.locks import UpdateLedger, UserLocks

RESIDENT_COMMANDS = [
    BotCommand(command="start", description="主菜单"),
    BotCommand(command="my", description="我的投诉"),
    BotCommand(command="help", description="帮助"),
    BotCommand(command="cancel", description="取消正在填写的投诉"),
    BotCommand(command="mydata", description="导出我的个人信息"),
    BotCommand(command="forget", description="删除我的个人信息"),
]


def make_bot(settings: Settings) -> Bot:
    if settings.bot_token is None:
        raise ValueError("BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url.rstrip("/")))
    return configure_bot(Bot(settings.bot_token.get_secret_value(), session=session,
                             default=DefaultBotProperties(parse_mode=ParseMode.HTML)))


def configure_bot(bot: Bot) -> Bot:
    """Direct replies ride out a 429 or a passing 5xx instead of failing the resident's update."""
    bot.session.middleware(RetryRequests())
    return bot


async def load_classifier(settings: Settings) -> Any:
    """jieba's dictionary takes a moment to load: do it in a thread, off the event loop."""
    from intents.classifier import Classifier

    return await asyncio.to_thread(Classifier.load, settings.rules_file)


def build_dispatcher(app: App, classifier: Any) -> Dispatcher:
    # One user's updates one at a time: in order within this process, and across processes
    # (PostgreSQL advisory lock); aiogram takes this before it reads the FSM state.
    locks = UserLocks(app.engine)
    storage = SqlFSMStorage(app.sessions, app.clock)
    dp = Dispatcher(storage=storage, events_isolation=CrossProcessIsolation(PerUserIsolation(), locks, storage),
                    app=app, classifier=classifier)
    # Then: take each update once (a redelivery is ignored), then flood control.
    dp.update.outer_middleware(TakeOnceMiddleware(UpdateLedger(app.sessions, app.clock)))
    dp.update.outer_middleware(StripNulMiddleware())
    dp.update.outer_middleware(PersonMiddleware(app.roster))  # staff/resident records: read once per update
    dp.message.outer_middleware(FloodControlMiddleware())
    dp.shutdown.register(locks.close)
    dp.errors.register(on_error)
    dp.include_router(staff.make_router())
    dp.include_router(follow_up.make_router())
    dp.include_router(privacy.make_router())  # before the residents' catch-all handlers
    dp.include_router(residents.make_router())
    return dp


async def register_commands(bot: Bot) -> None:
    await bot.set_my_commands(RESIDENT_COMMANDS)
