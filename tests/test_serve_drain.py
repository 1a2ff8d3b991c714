"""`altinn-receiver serve` as a real process: SIGTERM drains (keep listening, 503 + Retry-After, finish commits in
flight, exit 0), and no code or secret reaches the log."""

from __future__ import annotations

import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.ingest_support import OLD_SECRET, SECRET, ServeProcess, inbox_rows, new_event, push, webhook
from tests.support import wait_until


def inflight(client: httpx.Client, url: str) -> float:
    for line in client.get(f"{url}/metrics").text.splitlines():
        if line.startswith("altinn_receiver_ingest_inflight "):
            return float(line.split()[-1])
    return 0.0


def test_sigterm_drains_keeps_listening_with_503_commits_in_flight_and_exits_0(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, shutdown_timeout="10s")
    with serve, httpx.Client(timeout=30) as client, ThreadPoolExecutor(1) as pool:
        url = webhook(serve.url)
        in_flight = new_event()
        # Hold the write lock so that a push is still committing when SIGTERM arrives.
        locker = sqlite3.connect(serve.store, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            pending = pool.submit(push, client, url, in_flight)
            wait_until(lambda: inflight(client, serve.url) == 1, message="the push to be in flight")
            serve.signal(signal.SIGTERM)
            ready = wait_until(
                lambda: (r := client.get(f"{serve.url}/readyz")).status_code == 503 and r,
                message="/readyz to answer 503 while draining",
            )
            late = new_event()
            refused = push(client, url, late)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert ready.json()["draining"] is True
        assert ready.json()["ready"] is False
        assert int(ready.headers["retry-after"]) > 0
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        assert pending.result(timeout=10).status_code == 200
        assert serve.wait(timeout=20) == 0
    assert len(inbox_rows(serve.store, "id = ?", in_flight["id"])) == 1
    assert not inbox_rows(serve.store, "id = ?", late["id"])


def test_no_code_or_secret_reaches_the_log(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    with serve, httpx.Client(timeout=10) as client:
        push(client, webhook(serve.url), new_event())
        push(client, webhook(serve.url, OLD_SECRET), new_event())
        push(client, webhook(serve.url, "guessed-wrong-code"), new_event())
        push(client, f"{serve.url}/events?x=1&code={SECRET}&y=2", b"[]")
        client.get(f"{serve.url}/readyz?code={SECRET}")
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
    text = serve.log_path.read_text() + serve.err_path.read_text()
    for secret in (SECRET, OLD_SECRET, "guessed-wrong-code"):
        assert secret not in text
    access = [line for line in serve.log_lines() if line["logger"] == "receiver.access" and line["query"]]
    assert len(access) == 5
    assert {line["query"] for line in access} == {"?code=***", "?x=1&code=***&y=2"}
    stored = [line for line in access if line.get("outcome") == "stored"]
    assert len(stored) == 2
    assert {"event_id", "type", "resource", "outcome", "http_status", "ms"} <= set(stored[0])
