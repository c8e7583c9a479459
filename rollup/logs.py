"""Logging set-up: readable lines by default, one JSON object per line with ``--log-format json``.

Records may carry ``extra`` context (job, window, event, points, rows, duration …); both formats
show it. ``window`` is always the window's start in the job's time zone (ISO 8601 with offset).
Times are ISO 8601 to the millisecond with the local offset. Every handler masks remembered
secrets.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from rollup.secrets import RedactingFilter

CONTEXT_KEYS = ("job", "window", "event", "points", "rows", "duration", "sink", "error")


def _iso(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _iso(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in CONTEXT_KEYS if hasattr(record, key))
        return f"{line}  {context}" if context else line


class _JsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _iso(record)


def setup_logging(fmt: Literal["text", "json"] = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            _JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "urllib3", "elastic_transport", "opensearch"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
