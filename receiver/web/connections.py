"""The connections themselves, below HTTP: how long a request may take to arrive (`[receiver] read_timeout`) and
how many connections are held at once (`[receiver] max_connections`).

uvicorn has neither. Its keep-alive timer runs only between requests and stops at the first byte of the next one,
so a client that opens a connection and sends nothing, sends a header a byte at a time, or promises a body
(`Content-Length`) it never sends holds its connection, a file descriptor and a slot for ever; and once the
process runs out of file descriptors, legitimate pushes wait in the kernel's accept queue with nothing logged.
`GuardedHttpProtocol` is uvicorn's httptools protocol with both limits added where they can be seen: a request
(its head and its body) must arrive within `read_timeout` of its first byte (of the connection, for the first
request), or the connection is closed; a connection beyond `max_connections` is answered 503 with `Retry-After`
at once and closed, counted, and a warning says so at most once a minute.

What the protocol does not know (a request in flight, the draining receiver) it leaves to the app: a closed
connection ends the app's wait for the body with `http.disconnect` (the webhook stores nothing). On shutdown the
same deadline is brought forward to the end of the drain, so a slow client cannot hold the exit past
`shutdown_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from receiver.config import ReceiverConfig
from receiver.observability.metrics import LoopCounter

log = logging.getLogger("receiver.connections")

REFUSED_RETRY_AFTER_SECONDS = 1
WARN_EVERY_SECONDS = 60.0
REFUSAL_LINGER_SECONDS = 1.0
"""How long a refused connection is kept half-closed, until its request arrives, so that the client reads the 503
before the kernel would answer the request with a reset (closing with unread data resets the connection)."""
MAX_LINGERING = 16
"""Refused connections kept lingering at once; beyond it they close at once, so refusals cannot use up the files
they protect."""
FILES_KEPT = 256
"""File descriptors kept out of `max_connections` for the store, the logs, Altinn's connection pool, attachments
being written and plugins."""

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: %d\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
)
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def refusal(detail: bytes) -> bytes:
    """The answer to a connection beyond the limit: 503 with `detail` in a problem body."""
    body = b'{"title":"Service unavailable","status":503,"detail":"%s"}' % detail
    return _REFUSED % (REFUSED_RETRY_AFTER_SECONDS, len(body), body)


REFUSAL = refusal(b"the receiver holds as many connections as it may ([receiver] max_connections); try again")


class ConnectionGuard:
    """What every connection of one receiver shares: the two limits, the counts `/metrics` shows, and the drain.

    The app creates it (`create_app`); `GuardedHttpProtocol` finds it as the served app's `connections`.
    """

    def __init__(self, config: ReceiverConfig, answer: bytes = REFUSAL) -> None:
        self.read_timeout = config.read_timeout
        self.max_connections = config.max_connections
        self.refusal = answer
        """What a connection beyond the limit is answered."""
        self.refused = LoopCounter()
        self.timed_out = LoopCounter()
        self.open: set[GuardedHttpProtocol] = set()
        self.drain_deadline: float | None = None
        """The loop time by which every request still arriving is cut off: set when the receiver drains."""
        self.lingering = 0
        """Refused connections kept half-closed until their request comes (at most MAX_LINGERING)."""
        self._warned_at = -WARN_EVERY_SECONDS
        self._refused_since_warning = 0

    def full(self) -> bool:
        return len(self.open) >= self.max_connections

    def count_refusal(self) -> None:
        self.refused.inc()
        self._refused_since_warning += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            log.warning(
                "connection limit reached: new connections get 503 until some close",
                extra={"max_connections": self.max_connections, "refused": self._refused_since_warning},
            )
            self._warned_at = now
            self._refused_since_warning = 0

    def drain(self, seconds: float) -> None:
        """The receiver drains: no request may still be arriving `seconds` from now (called on the event loop)."""
        self.drain_deadline = deadline = asyncio.get_running_loop().time() + seconds
        for protocol in list(self.open):
            protocol.bring_deadline_forward(deadline)

    def collector(self) -> Collector:
        return ConnectionMetrics(self)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a read deadline per request and a limit on open connections."""

    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        guard = getattr(config.app, "connections", None)
        if not isinstance(guard, ConnectionGuard):
            raise TypeError("GuardedHttpProtocol serves only an app whose `connections` is a ConnectionGuard")
        self.guard = guard
        self._deadline: asyncio.TimerHandle | None = None
        self._receiving_body = False
        self._refused = False
        self._lingering: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if self.guard.full():
            self._refuse(transport)
            return
        self.guard.open.add(self)
        super().connection_made(transport)
        self._arm(self.guard.read_timeout)

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        self.transport = transport
        self.guard.count_refusal()
        transport.write(self.guard.refusal)
        if self.guard.lingering < MAX_LINGERING and transport.can_write_eof():
            transport.write_eof()
            self.guard.lingering += 1
            self._lingering = self.loop.call_later(REFUSAL_LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:  # the request of a refused connection has come: it is dropped, and the connection closed
            self.transport.close()
            return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.open.discard(self)
        if self._refused:
            if self._lingering is not None:
                self._lingering.cancel()
                self.guard.lingering -= 1
            self.transport.close()
            return
        super().connection_lost(exc)

    # The parser's callbacks: a request is being read from its first byte until its last.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving_body = False
        if self._deadline is None:  # the connection's first request is timed from when it opened
            self._arm(self.guard.read_timeout)

    def on_headers_complete(self) -> None:
        self._receiving_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._receiving_body = False
        super().on_message_complete()

    # The deadline.

    def _arm(self, seconds: float) -> None:
        self._disarm()
        if self.guard.drain_deadline is not None:
            seconds = min(seconds, self.guard.drain_deadline - self.loop.time())
        self._deadline = self.loop.call_later(max(seconds, 0.0), self._read_timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def bring_deadline_forward(self, deadline: float) -> None:
        """Cut off the request being read at `deadline` (a loop time) unless its own deadline comes first."""
        if self._deadline is not None and deadline < self._deadline.when():
            self._arm(deadline - self.loop.time())

    def _read_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.guard.timed_out.inc()
        if not self._receiving_body:
            # Nothing of this request reached the app: it can be told why the connection closes.
            self.transport.write(_TIMED_OUT)
        self.transport.close()


class ConnectionMetrics(Collector):
    """`/metrics`: the connections open now, refused at the limit, and closed for a request too slow to arrive."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard

    def collect(self) -> Iterator[Metric]:
        guard = self.guard
        yield GaugeMetricFamily("altinn_receiver_connections_open", "HTTP connections open now.", value=len(guard.open))
        yield GaugeMetricFamily(
            "altinn_receiver_connections_max", "New connections beyond this get 503 ([receiver] max_connections).",
            value=guard.max_connections,
        )  # fmt: skip
        refused = CounterMetricFamily(
            "altinn_receiver_connections_refused",
            "Connections answered 503 at once because max_connections were open.",
        )
        refused.add_metric([], guard.refused.value)
        yield refused
        timed_out = CounterMetricFamily(
            "altinn_receiver_connections_timed_out",
            "Connections closed because a request's head or body did not arrive within read_timeout.",
        )
        timed_out.add_metric([], guard.timed_out.value)
        yield timed_out


def fit_to_file_limit(max_connections: int) -> tuple[int, str]:
    """The number of connections this process can hold: `max_connections`, after raising the soft open-file limit
    towards the hard one as far as that needs, or fewer when the hard limit is too low; and a warning saying so
    ("" when none is needed). Each connection is a file descriptor, and a process out of them stops accepting."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + FILES_KEPT
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections, ""
    kept = min(FILES_KEPT, soft // 2)
    fitting = max(soft - kept, 1)
    return fitting, (
        f"[receiver] max_connections {max_connections} does not fit the open-file limit of {soft} (ulimit -n, "
        f"{kept} kept for the store, logs, Altinn and attachments): at most {fitting} connections are held; raise "
        "the limit (LimitNOFILE=, docker --ulimit nofile=) or lower max_connections"
    )
