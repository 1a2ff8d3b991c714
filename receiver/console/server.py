"""The console's own uvicorn server: its own socket, in the event loop of the webhook's server, which owns the
signals and stops it (`serve`: SIGTERM stops the console at once while the webhook drains)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn

from receiver.config import Config
from receiver.console.app import create_console_app
from receiver.console.state import ConsoleState
from receiver.runtime import Runtime
from receiver.web.connections import GuardedHttpProtocol

log = logging.getLogger("receiver.console")


class ConsoleServer(uvicorn.Server):
    """uvicorn on the console's socket, without signal handlers of its own.

    Shutting down first ends the live streams (`ConsoleState.closing`), so that uvicorn's wait for the responses in
    progress, bounded by `shutdown_timeout`, is short.
    """

    def __init__(self, runtime: Callable[[], Runtime | None], config: Config, sock: socket.socket) -> None:
        self.app = create_console_app(runtime, config)
        super().__init__(
            uvicorn.Config(
                self.app,
                proxy_headers=False,
                access_log=False,
                server_header=False,
                log_config=None,
                lifespan="off",  # the store is the receiver's: the webhook's lifespan opens and closes it
                ws="none",
                http=GuardedHttpProtocol,
                timeout_graceful_shutdown=int(max(config.receiver.shutdown_timeout, 1.0)),
            )
        )
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def state(self) -> ConsoleState:
        state: ConsoleState = self.app.state.console
        return state

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the webhook's server takes SIGTERM and SIGINT and stops this one

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.state.closing.set()
        await super().shutdown(sockets)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The console serves while the block runs; it is stopped (within the shutdown bound) when it ends."""
        task = asyncio.create_task(self.serve(sockets=[self.sock]), name="console")
        try:
            yield
        finally:
            self.should_exit = True
            try:
                await task
            except (SystemExit, Exception):
                log.error("the console did not stop cleanly", exc_info=True)
