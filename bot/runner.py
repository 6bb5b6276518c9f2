"""`wuye run`: start the bot. Filled in by the dialogs work; until then it says what is missing."""

from __future__ import annotations

import sys

from bot.settings import Settings


def run_command(*, webhook: bool = False, demo: bool = False) -> int:
    settings = Settings()
    if settings.bot_token is None:
        print("wuye: 未设置 BOT_TOKEN。请设置环境变量 BOT_TOKEN=<从 @BotFather 获得的令牌> 后再运行;"
              "如使用自建 Bot API 服务器,另设 TELEGRAM_API_URL。", file=sys.stderr)
        return 2
    print("wuye: 机器人对话尚未接入。", file=sys.stderr)
    return 1
