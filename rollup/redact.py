"""Defence in depth for credentials: every secret read is remembered and masked in any text we print.

Secrets are kept out of messages by construction (they travel in headers, never in URLs or
errors); this catches what a third-party library might still echo back, e.g. a server error page
quoting a request header.
"""

from __future__ import annotations

import logging

_SECRETS: set[str] = set()
MASK = "***"


def remember(secret: str) -> None:
    if len(secret) >= 4:  # masking one- to three-letter strings would garble ordinary text
        _SECRETS.add(secret)


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks remembered secrets in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True
