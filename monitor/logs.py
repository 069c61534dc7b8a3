"""Logging set-up (plain or JSON lines) and a per-key rate limit for noisy warnings."""

from __future__ import annotations

import json
import logging
import sys
import time

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(level: str, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RateLimitedLog:
    """Logs at most one line per key per interval, and says how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self._interval) < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar lines suppressed)"
        self._logger.warning(message, *args)


# aiohttp's own loggers: access lines, errors while reading or answering a request.
AIOHTTP_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.internal")
MAX_SERVER_LOG_CHARS = 200


class ServerLogFilter(logging.Filter):
    """aiohttp's log lines made safe to keep: at most one line per logger and kind per
    interval (then how many were suppressed), only the message's first line cut to
    MAX_SERVER_LOG_CHARS with control characters escaped, and of an exception only its type:
    never a traceback, never a request body."""

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        key = (record.name, f"{str(record.msg)[:80]}|{type(error).__name__}")
        now = time.monotonic()
        if now - self._last.get(key, -self._interval) < self._interval:
            if len(self._suppressed) < 1000 or key in self._suppressed:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        if len(self._last) >= 1000:
            self._last.clear()
        self._last[key] = now
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        lines = message.splitlines()
        message = (lines[0] if lines else "")[:MAX_SERVER_LOG_CHARS]
        message = message.encode("ascii", "backslashreplace").decode()
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        if error is not None:
            message += f" ({type(error).__name__})"
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar lines suppressed)"
        record.msg, record.args = message, None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def quiet_aiohttp_logs() -> None:
    """Install ServerLogFilter on aiohttp's loggers, once."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ServerLogFilter) for f in logger.filters):
            logger.addFilter(ServerLogFilter())
