"""Structured logging: one JSON object per line on stdout, with secrets redacted on the way out."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_CODE = re.compile(r"([?&](?:code|secret|token|access_token|assertion)=)[^&\s\"']*", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9\-_.~+/]+=*", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    """Hide webhook codes in URLs, bearer tokens and anything shaped like a JWT."""
    text = _CODE.sub(r"\1***", text)
    text = _BEARER.sub(r"\1***", text)
    return _JWT.sub("***", text)


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


PREFORMATTED = "preformatted_json"


def emit_json_line(logger: logging.Logger, line: str, level: int = logging.INFO) -> None:
    """Hand an already-built, already-redacted JSON line to `logger`'s handlers, skipping the costly parts of
    logging (caller lookup, formatting, redaction) on hot paths such as the access log."""
    if not logger.isEnabledFor(level):
        return
    record = logger.makeRecord(logger.name, level, "", 0, line, (), None)
    setattr(record, PREFORMATTED, True)
    logger.handle(record)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra fields}`; every string passes through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, PREFORMATTED, False):
            return record.getMessage()
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(redact_value(entry), default=str, ensure_ascii=False)


def setup_logging(level: str = "info", handler: logging.Handler | None = None) -> None:
    """Route the root logger (and uvicorn's) to `handler` (default: stdout) as JSON lines."""
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # httpx logs every request at info; the receiver logs what matters about its Altinn calls itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
