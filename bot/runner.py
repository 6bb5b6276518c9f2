"""`wuye run`: start the bot by long polling (default) or as a webhook server; without BOT_TOKEN,
the local sandbox (:mod:`sandbox`): the whole bot in a browser against the Bot API emulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from bot.settings import Settings

logger = logging.getLogger(__name__)


def run_command(*, webhook: bool = False, demo: bool = False) -> int:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot.logging_filters import install_phone_masking

    install_phone_masking()  # residents' phones never reach a log, whatever the level
    if settings.bot_token is None:
        if webhook:
            print("wuye: --webhook 需要 BOT_TOKEN。请设置环境变量 BOT_TOKEN=<从 @BotFather 获得的令牌> 后再运行。",
                  file=sys.stderr)
            return 2
        # No token: the embedded default is the local sandbox (the bot in a browser, no Telegram).
        logger.info("未设置 BOT_TOKEN,启动本地沙盒。如需连接 Telegram,请设置环境变量 "
                    "BOT_TOKEN=<从 @BotFather 获得的令牌> 后再运行;如使用自建 Bot API 服务器,另设 TELEGRAM_API_URL。")
        from sandbox.runtime import run_sandbox

        return run_sandbox(settings, demo=demo)
    if demo:
        logger.warning("--demo 只用于本地沙盒(未设置 BOT_TOKEN 时),已忽略。")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, webhook=webhook))
    return 0


async def serve(settings: Settings, *, webhook: bool = False) -> None:
    from bot.container import build_app
    from bot.dispatcher import build_dispatcher, load_classifier, make_bot, register_commands
    from notifier.runtime import Background

    app = await build_app(settings)
    classifier = await load_classifier(settings)
    bot = make_bot(settings)
    dp = build_dispatcher(app, classifier)
    background = Background(app, bot, timer_interval=settings.timer_interval)
    try:
        await register_commands(bot)
        await background.start()
        if webhook:
            await _serve_webhook(settings, bot, dp)
        else:
            await bot.delete_webhook(drop_pending_updates=False)
            await dp.start_polling(bot, handle_signals=False)
    finally:
        await background.stop()
        await bot.session.close()
        await app.close()


async def _serve_webhook(settings: Settings, bot: object, dp: object) -> None:
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
    from aiohttp import web

    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    web_app = web.Application()
    # Answer Telegram only after the update was handled: a process that dies mid-update leaves it
    # unanswered, and Telegram's redelivery lets another process finish it.
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret,  # type: ignore[arg-type]
                         handle_in_background=False).register(web_app, path=settings.webhook_path)
    setup_application(web_app, dp, bot=bot)  # type: ignore[arg-type]
    if settings.webhook_url:
        await bot.set_webhook(settings.webhook_url.rstrip("/") + settings.webhook_path,  # type: ignore[attr-defined]
                              secret_token=secret)
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, settings.webhook_host, settings.webhook_port).start()
    logger.info("webhook listening on %s:%s%s", settings.webhook_host, settings.webhook_port, settings.webhook_path)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
