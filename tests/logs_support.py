"""A logger of a test's own that writes through `serve`'s log handler: JSON lines, buffered in the background."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from receiver.observability.logs import BufferedLineHandler, JsonFormatter


@contextmanager
def buffered_logger(
    name: str, stream: TextIO, flush_interval: float
) -> Iterator[tuple[logging.Logger, BufferedLineHandler]]:
    """Logger `name` at INFO, its lines going only to `stream` through a `BufferedLineHandler` with `JsonFormatter`
    (not to the root logger); the handler is taken off and closed after."""
    handler = BufferedLineHandler(stream, flush_interval=flush_interval)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield logger, handler
    finally:
        logger.handlers[:] = []
        handler.close()
