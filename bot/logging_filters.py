"""Logging that never keeps a resident's phone number (个人信息保护法): a filter on every handler
masks mainland mobiles and landlines in the message, its arguments and the traceback."""

from __future__ import annotations

import logging

from dialogs.staff_views import mask_phones


class PhoneMaskFilter(logging.Filter):
    """``13812345678`` → ``138****5678`` in every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phones(message)
        if masked != message:
            # The formatted text replaces msg % args, so no argument can carry the number out.
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            # Tracebacks quote SQL parameters and reprs: format now, masked, and let the
            # formatter reuse the text.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_phones(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_phones(record.stack_info)
        return True


def install_phone_masking(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of ``logger`` (the root logger by default). Handler
    filters see the records of all loggers that propagate to it, logger filters would not."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, PhoneMaskFilter) for f in handler.filters):
            handler.addFilter(PhoneMaskFilter())
