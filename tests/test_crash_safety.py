"""Acknowledged means durable: SIGKILL the server at a random moment while clients push; after a restart every event
that got a 200 is in the inbox."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.ingest_support import ServeProcess, inbox_rows, new_event, push, webhook
from tests.support import wait_until


def pusher(url: str, acknowledged: list[str], stop: threading.Event) -> None:
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            event = new_event()
            try:
                response = push(client, url, event)
            except httpx.TransportError:
                return  # the server is gone: this event was never acknowledged
            if response.status_code == 200:
                acknowledged.append(event["id"])


def test_every_acknowledged_event_survives_sigkill(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path).start()
    acknowledged: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=pusher, args=(webhook(serve.url), acknowledged, stop)) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        # Enough acknowledged pushes to mean something, then a random moment for the crash (not a wait).
        wait_until(lambda: len(acknowledged) >= 20, timeout=30, message="20 acknowledged pushes")
        time.sleep(random.uniform(0.0, 1.0))
        serve.signal(signal.SIGKILL)
        assert serve.wait(10) == -signal.SIGKILL
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)

    with ServeProcess(tmp_path) as restarted, httpx.Client(timeout=5) as client:
        assert restarted.store == serve.store
        assert client.get(f"{restarted.url}/readyz").status_code == 200
        stored = {row["id"] for row in inbox_rows(restarted.store)}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged events lost"
