"""What the forward handlers share besides their message (handlers/envelope.py): `Forwarder`, the base that counts
and times each forward, and `BrokerForwarder`, which adds the one connection a broker handler keeps; the location of
a target for log lines; and the templates the broker handlers address messages with."""

from __future__ import annotations

import asyncio
import contextlib
import string
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from handlers import BaseHandler, Context, Event, OptionError, Permanent, RetryLater

TEMPLATE_FIELDS = ("type", "resource", "resourceinstance", "subject", "id")
"""The event's attributes a routing key or subject template may name, as `{type}`."""


def location(url: str) -> str:
    """The URL without credentials or query, for log lines and errors (user info and a query may hold secrets)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def track(ctx: Context[Any]) -> None:
    """Show this handler's `altinn_receiver_forward_total` at zero for each outcome from the start (in `start`)."""
    ctx.metrics.track_forwards(ctx.name)


@contextlib.contextmanager
def measured(ctx: Context[Any]) -> Iterator[None]:
    """Count one forward by how it ended (`altinn_receiver_forward_total{handler,outcome}`) and time it
    (`altinn_receiver_forward_seconds{handler}`); `handler` is the name it runs under."""
    started = time.perf_counter()
    outcome = "cancelled"
    try:
        yield
        outcome = "done"
    except Permanent:
        outcome = "permanent"
        raise
    except Exception:  # RetryLater, and anything else the dispatcher retries
        outcome = "retry"
        raise
    finally:
        ctx.metrics.forwarded(ctx.name, outcome, time.perf_counter() - started)


def check_template(template: str, key: str) -> None:
    """OptionError naming `key` unless `template` names only `TEMPLATE_FIELDS`, as `{name}` (no format specs)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise OptionError(key, f"is not a template: {exc} (write a literal brace as {{{{ or }}}})") from None
    for _, field, spec, conversion in parsed:
        if field is not None and (field not in TEMPLATE_FIELDS or spec or conversion):
            names = ", ".join(f"{{{name}}}" for name in TEMPLATE_FIELDS)
            raise OptionError(key, f"names {{{field}}}: a template may use {names}")


def render(template: str, event: Event) -> str:
    """`template` (checked by `check_template`) with the event's attributes; an absent one is empty."""
    return template.format_map({name: str(getattr(event, name) or "") for name in TEMPLATE_FIELDS})


class Forwarder(BaseHandler):
    """A handler that hands the event to an agency's system: `forward` it (return once the other side has it),
    each forward counted and timed by `measured` from the start."""

    async def start(self, ctx: Context[Any]) -> None:
        track(ctx)

    async def handle(self, event: Event, ctx: Context[Any]) -> None:
        with measured(ctx):
            await self.forward(event, ctx)

    async def forward(self, event: Event, ctx: Context[Any]) -> None:
        raise NotImplementedError


class Link(Protocol):
    """An open connection to a broker, with what publishing needs of it."""

    def usable(self) -> bool:
        """Whether it still works (not lost, not closed)."""
        ...

    async def close(self) -> None: ...


L = TypeVar("L", bound=Link)


class BrokerForwarder(Forwarder, Generic[L]):
    """A forwarder to a broker: one connection (`connect` makes it), opened at start, again when lost, and closed by
    `aclose`. A broker that cannot take the events at start is a warning, not a failed start: its events are
    retried until it can."""

    def __init__(self) -> None:
        self._connection: SharedConnection[L] | None = None

    async def start(self, ctx: Context[Any]) -> None:
        await super().start(ctx)
        self._connection = SharedConnection(lambda: self.connect(ctx))
        try:
            link = await self._connection.get()
        except RetryLater as exc:
            ctx.log.warning("cannot publish to the broker yet; events are retried until it takes them",
                            extra={"reason": exc.reason})  # fmt: skip
            return
        await self.connected(link, ctx)

    async def connect(self, ctx: Context[Any]) -> L:
        """A new connection; `RetryLater` with a reason that names no credential when there is none to be had."""
        raise NotImplementedError

    async def connected(self, link: L, ctx: Context[Any]) -> None:
        """What to check once connected at start: nothing."""

    async def link(self) -> L:
        """The open connection, or a new one."""
        assert self._connection is not None, "start() makes the connection"
        return await self._connection.get()

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.aclose()


class SharedConnection(Generic[L]):
    """One connection to a broker, shared by every run of a handler: opened when first needed, and again once it
    is lost (a lost one is closed first). One attempt at a time, whose outcome every run waiting for it shares, so
    that an unreachable broker costs each waiting event one failed attempt, not one `timeout` after another. A run
    that is cancelled while it waits leaves the attempt to go on for the others."""

    def __init__(self, connect: Callable[[], Awaitable[L]]) -> None:
        self._connect = connect
        self._attempt: asyncio.Task[L] | None = None

    async def get(self) -> L:
        """The open connection, or a new one."""
        attempt = self._attempt
        if attempt is None or (attempt.done() and self._opened(attempt) is None):
            attempt = self._attempt = asyncio.create_task(self._replace(attempt))
            attempt.add_done_callback(_retrieve)
        return await asyncio.shield(attempt)

    @staticmethod
    def _opened(attempt: asyncio.Task[L]) -> L | None:
        """What a finished attempt opened, while it is still usable."""
        if attempt.cancelled() or attempt.exception() is not None:
            return None
        link = attempt.result()
        return link if link.usable() else None

    async def _replace(self, previous: asyncio.Task[L] | None) -> L:
        if previous is not None and not previous.cancelled() and previous.exception() is None:
            with contextlib.suppress(Exception):  # a lost connection may fail to close: it is gone either way
                await previous.result().close()
        return await self._connect()

    async def aclose(self) -> None:
        """Close the connection, or stop the attempt at opening one."""
        attempt, self._attempt = self._attempt, None
        if attempt is None:
            return
        if not attempt.done():
            attempt.cancel()
            await asyncio.wait({attempt})
        if not attempt.cancelled() and attempt.exception() is None:
            await attempt.result().close()


def _retrieve(attempt: asyncio.Task[Any]) -> None:
    """Mark a failed attempt's exception as seen: the runs waiting for it have it; if none waited, the next run
    tries again."""
    if not attempt.cancelled():
        attempt.exception()
