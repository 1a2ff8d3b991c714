"""Structured logging: one JSON object per line on stdout, with secrets redacted on the way out."""

from __future__ import annotations

import codecs
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, TextIO
from urllib.parse import quote, unquote_to_bytes, urlsplit

SECRET_QUERY_NAMES = frozenset({"code", "secret", "token", "access_token", "assertion"})
"""Query fields whose value is a credential: the webhook's code, and what OAuth flows put in URLs."""
_CODE = re.compile(rf"((?:^|[?&;])(?:{'|'.join(sorted(SECRET_QUERY_NAMES))})=)[^&\s\"']*", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9\-_.~+/]+=*", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")

# Record attributes that are the logging module's own, and uvicorn's `color_message` (its message again, with ANSI
# colour codes): none of them is a field of the line.
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName", "color_message"
}  # fmt: skip

# The values of the config's secret keys (`add_secrets`), as one pattern; None until there are some.
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None
MIN_SECRET_TO_REDACT = 8
"""Shorter secret values (an old webhook code) are not looked for: hiding every "abc" would garble the lines."""

_context: ContextVar[dict[str, Any] | None] = ContextVar("receiver_log_context", default=None)


def redact(text: str) -> str:
    """Hide webhook codes in URLs, bearer tokens, anything shaped like a JWT, and the configured secrets."""
    text = _CODE.sub(r"\1***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _JWT.sub("***", text)
    return _secret_pattern.sub("***", text) if _secret_pattern is not None else text


def add_secrets(values: Iterable[str]) -> None:
    """Values no log line may show, from the keys the config marks secret (`receiver.validation.secrets_in`):
    `redact` replaces each with ***. Of a URL only its credentials are secret: its query and its password."""
    global _secret_pattern
    for value in values:
        parts = urlsplit(value) if "://" in value else None
        for secret in (parts.query, parts.password or "") if parts is not None else (value,):
            if len(secret) >= MIN_SECRET_TO_REDACT:
                _secrets.add(secret)
    if _secrets:
        # Longest first, so that a secret that contains another is hidden whole.
        _secret_pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside carries `fields` (a line's own fields win): the dispatcher puts the event's id on
    everything written while its handlers run, the Altinn clients' lines included. Tasks started inside inherit
    them, as asyncio tasks inherit context variables."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def query_fields(query: bytes) -> Iterator[tuple[bytes, bytes]]:
    """A query string's fields as the webhook's code check reads them (`receiver.web.webhook.query_value`):
    separated by `&` only (not `;`), empty fields skipped, each `name=value` (no `=`: an empty value), and in both
    `+` a space and `%XX` a byte. The access log redacts by this same reading, so that no form of `?code=` that the
    check accepts (`?%63ode=…`, a percent-encoded value, `+` for a space) shows in a log line."""
    for field in query.split(b"&"):
        if field:
            name, _, value = field.partition(b"=")
            yield _unquote(name), _unquote(value)


def _unquote(text: bytes) -> bytes:
    return unquote_to_bytes(text.replace(b"+", b" ")) if b"%" in text or b"+" in text else text


# Shown as they are in a query: the characters RFC 3986 allows there, but those that separate fields.
_SHOWN_AS_IS = "!$'()*,/:;@[]"


@lru_cache(maxsize=64)
def redact_query(query: bytes) -> str:
    """A request's query string as an access line shows it, '' when there is none: each field as `query_fields`
    reads it, the value of a name in SECRET_QUERY_NAMES (any letter case) as `***`, what `redact` hides hidden in
    every other value (`a=1;code=…`), then percent-encoded again: `?x=1&code=***`.

    Cached because a receiver sees the same few queries (Altinn's registered URL) over and over.
    """
    if not query:
        return ""
    shown = []
    for raw_name, raw_value in query_fields(query):
        name = raw_name.decode("utf-8", "replace")
        value = "***" if name.lower() in SECRET_QUERY_NAMES else redact(raw_value.decode("utf-8", "replace"))
        shown.append(f"{quote(name, safe=_SHOWN_AS_IS)}={quote(value, safe=_SHOWN_AS_IS + '=')}")
    return "?" + "&".join(shown)


_stamp: tuple[int, str] = (-1, "")


def utc_stamp(moment: float) -> str:
    """`time.time()` as a log line's `ts`: `2026-11-30T10:31:17.123Z` (the seconds are formatted once per second)."""
    global _stamp
    second, prefix = _stamp
    if int(moment) != second:
        second = int(moment)
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _stamp = (second, prefix)
    return f"{prefix}.{int((moment - second) * 1000):03d}Z"


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


PREFORMATTED = "preformatted_json"

JSON_ESCAPE = "receiver.json_escape"
"""A codec error handler: what a stream cannot encode (a lone surrogate, from JSON a client sent) becomes its JSON
escape (`\\ud800`), which is valid inside a JSON string, the only place such a character can be in a log line."""


def _json_escape(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    unencodable = error.object[error.start : error.end]
    return json.dumps(unencodable)[1:-1], error.end


codecs.register_error(JSON_ESCAPE, _json_escape)


def emit_json_line(logger: logging.Logger, line: str, level: int = logging.INFO) -> None:
    """Hand an already-built, already-redacted JSON line to `logger`'s handlers, skipping the costly parts of
    logging (caller lookup, formatting, redaction) on hot paths such as the access log.

    When every handler on the way up is a `BufferedLineHandler` (as under `serve`) the line goes straight into their
    buffers, without a `LogRecord`; any other handler or filter gets a record, as it expects.
    """
    if not logger.isEnabledFor(level):
        return
    targets = _line_targets(logger, level)
    if targets is None:
        record = logger.makeRecord(logger.name, level, "", 0, line, (), None)
        setattr(record, PREFORMATTED, True)
        logger.handle(record)
        return
    for handler in targets:
        handler.write_line(line, level)


def _line_targets(logger: logging.Logger, level: int) -> list[BufferedLineHandler] | None:
    """The handlers that would take a record of `level` from `logger`, if all of them can take a bare line."""
    targets: list[BufferedLineHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if type(handler) is not BufferedLineHandler or handler.filters:
                return None
            if level >= handler.level:
                targets.append(handler)
        current = current.parent if current.propagate else None
    return targets or None


class BufferedLineHandler(logging.StreamHandler[TextIO]):
    """Log lines to a stream, written by a background thread at most `flush_interval` seconds after they were logged.

    Writing every line with its own system call cost the webhook as much as parsing the event. Lines stay in order;
    warnings and errors are written at once (with everything before them), and `flush()`/`close()` (which
    `logging.shutdown` calls at exit) write what is left. A process killed with SIGKILL loses at most the last
    `flush_interval` of lines: logs are not what makes an event durable, the store is. When the stream cannot keep
    up, a caller writes the buffer itself once it holds `max_lines`, so memory stays bounded. A character the stream
    cannot encode (a lone surrogate) is written as its JSON escape, and the lines written with it are kept.
    """

    def __init__(self, stream: TextIO, flush_interval: float = 0.1, max_lines: int = 10_000) -> None:
        super().__init__(stream)
        self.flush_interval = flush_interval
        self.max_lines = max_lines
        self._lines: list[str] = []
        # Not the handler's own lock: `logging.shutdown` holds that one while it calls flush().
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending = threading.Event()
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._write_periodically, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write_line(line, record.levelno)

    def write_line(self, line: str, level: int = logging.INFO) -> None:
        """Queue one formatted line; at WARNING and above, write everything queued now."""
        with self._queue_lock:
            self._lines.append(line)
            if len(self._lines) == 1:
                self._pending.set()
            urgent = level >= logging.WARNING or len(self._lines) >= self.max_lines
        if urgent:
            self.flush()

    def flush(self) -> None:
        """Write every queued line and flush the stream."""
        with self._write_lock:
            with self._queue_lock:
                lines, self._lines = self._lines, []
                self._pending.clear()
            if lines and self.stream is not None:
                text = "\n".join(lines) + "\n"
                try:
                    try:
                        self.stream.write(text)
                    except UnicodeEncodeError:  # nothing was written: write every line, escaping what cannot be
                        encoding = getattr(self.stream, "encoding", None) or "utf-8"
                        self.stream.write(text.encode(encoding, JSON_ESCAPE).decode(encoding))
                    self.stream.flush()
                except (OSError, ValueError):  # the stream is gone (closed pipe, closed file): nowhere to log to
                    pass

    def _write_periodically(self) -> None:
        while not self._stopping.is_set():
            self._pending.wait()
            self._stopping.wait(self.flush_interval)
            self.flush()

    def close(self) -> None:
        self._stopping.set()
        self._pending.set()
        self.flush()
        super().close()


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra fields}`; every string passes through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, PREFORMATTED, False):
            return record.getMessage()
        entry: dict[str, Any] = {
            "ts": utc_stamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **(_context.get() or {}),
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
