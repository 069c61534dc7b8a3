"""livekit-rtc logs each byte or text stream that no handler takes ("ignoring byte stream with
topic '...', no callback attached") at INFO on the root logger, once per stream. The room observer
reads one topic and leaves the others (transcriptions, chat) by design, so this filter turns those
lines into one DEBUG line per topic."""

from __future__ import annotations

import logging
import re

IGNORED_STREAM = re.compile(r"ignoring (byte|text) stream with topic")
MAX_TOPICS = 256  # topics remembered; beyond, ignored streams are not logged at all


class IgnoredStreamsOnce(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and IGNORED_STREAM.match(record.msg)):
            return True
        key = (record.msg, str(record.args[0]) if isinstance(record.args, tuple)
               and record.args else "")
        if key in self._seen or len(self._seen) >= MAX_TOPICS:
            return False
        self._seen.add(key)
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_ignored_streams() -> None:
    """Install the filter on the root logger (where livekit-rtc logs them), once."""
    root = logging.getLogger()
    if not any(isinstance(f, IgnoredStreamsOnce) for f in root.filters):
        root.addFilter(IgnoredStreamsOnce())
