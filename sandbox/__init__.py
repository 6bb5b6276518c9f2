"""A local sandbox: the whole bot in a browser, against the project's own Bot API emulator.

``wuye run`` without ``BOT_TOKEN`` starts it (see :mod:`sandbox.runtime`); no Telegram account
and no internet connection are needed.
"""
