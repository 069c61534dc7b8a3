"""livekit-rtc's 'ignoring byte stream' lines: one DEBUG line per topic."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from monitor.observer.rtc_logging import IgnoredStreamsOnce

IGNORED = "ignoring byte stream with topic '%s', no callback attached"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root() -> Iterator[tuple[logging.Logger, Collect]]:
    logger, handler, level = logging.getLogger(), Collect(), logging.getLogger().level
    quiet = IgnoredStreamsOnce()
    logger.addHandler(handler)
    logger.addFilter(quiet)
    yield logger, handler
    logger.removeFilter(quiet)
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_each_topic_is_logged_once_at_debug(root: tuple[logging.Logger, Collect]) -> None:
    logger, handler = root
    logger.setLevel(logging.DEBUG)
    for topic in ("lk.transcription", "lk.transcription", "lk.chat"):
        logging.info(IGNORED, topic)
    logging.info("something else")
    assert [(r.levelname, r.getMessage()) for r in handler.records] == [
        ("DEBUG", IGNORED % "lk.transcription"), ("DEBUG", IGNORED % "lk.chat"),
        ("INFO", "something else")]


def test_nothing_at_info(root: tuple[logging.Logger, Collect]) -> None:
    logger, handler = root
    logger.setLevel(logging.INFO)
    logging.info(IGNORED, "lk.transcription")
    assert handler.records == []
