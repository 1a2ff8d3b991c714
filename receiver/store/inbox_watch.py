"""SQLite's stand-in for PostgreSQL's LISTEN: a thread that sees other processes' new events in the store file.

SQLite cannot tell one connection of another's commits, but `PRAGMA data_version` on a connection of its own changes
whenever any other connection, in any process, has committed to the file, and reading it costs about 2 µs (no page is
read). The thread reads it every `WATCH_INTERVAL`; when it changed, `SELECT max(seq) FROM inbox` says whether the
commit added events (the dispatcher's own outcomes and the other writes change the file too, and must not wake it),
and then it wakes the dispatcher on its event loop. So a worker in another process than the webhook
(`serve --role worker`, or the worker process of `serve`) starts an event about `WATCH_INTERVAL` / 2 after the
webhook committed it, instead of after the dispatcher's `poll_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from receiver.store import db
from receiver.store.errors import StoreError

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.01
"""Seconds between two reads of `data_version`: 100 reads a second, about 0.02 % of a core."""
RETRY_INTERVAL = 1.0
"""Seconds before the store is opened again after watching it failed (the dispatcher polls meanwhile)."""


class InboxWatch:
    """Calls `wake` on `loop` when another connection added events to the inbox of the store at `path`, and once
    when it starts watching (what was committed before)."""

    def __init__(
        self, path: Path, wake: Callable[[], None], loop: asyncio.AbstractEventLoop, interval: float = WATCH_INTERVAL
    ) -> None:
        self.path = path
        self.wake = wake
        self.loop = loop
        self.interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        said = ""  # what the last failure said: each new reason is logged once, not every RETRY_INTERVAL
        while not self._stopping.is_set():
            try:
                self._watch()
            except (sqlite3.Error, StoreError) as exc:
                reason = db.describe(exc) if isinstance(exc, sqlite3.Error) else str(exc)
                if reason != said:
                    log.warning("cannot watch the store for new events; polling meanwhile",
                                extra={"store": str(self.path), "error": reason})  # fmt: skip
                    said = reason
                self._stopping.wait(RETRY_INTERVAL)
            except RuntimeError:  # the event loop is closed: nothing is left to wake
                return

    def _watch(self) -> None:
        with closing(db.connect_sync(self.path, read_only=True)) as conn:
            version, newest = None, -1
            while True:
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now != version:
                    version = now
                    seq = conn.execute("SELECT coalesce(max(seq), 0) FROM inbox").fetchone()[0]
                    if seq > newest:
                        newest = seq
                        self.loop.call_soon_threadsafe(self.wake)
                if self._stopping.wait(self.interval):
                    return
