"""When the store cannot commit, the webhook answers 503 with Retry-After and never 200 (and nothing is half-kept).

Provoked the way they happen for real, also as root where file modes do not stop writes: another connection holding
the write lock, and a file-size limit (RLIMIT_FSIZE) on the server process.
"""

from __future__ import annotations

import resource
import sqlite3
from pathlib import Path

import httpx

from tests.ingest_support import ServeProcess, count, inbox_rows, make_config, new_event, push, running_app, webhook


def test_a_store_locked_by_another_connection_gets_503_with_retry_after_then_recovers(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_app(config) as server, httpx.Client(timeout=30) as client:
        url = webhook(server.url)
        locker = sqlite3.connect(config.store.path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            event = new_event()
            refused = push(client, url, event)
            ready = client.get(f"{server.url}/readyz")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        assert "locked" in refused.json()["detail"]
        assert ready.status_code == 503
        assert ready.json()["store"] == "database is locked by another connection"
        assert ready.json()["ready"] is False
        assert not inbox_rows(config.store.path, "id = ?", event["id"])

        assert push(client, url, event).status_code == 200
        assert client.get(f"{server.url}/readyz").status_code == 200
        rejected = client.get(f"{server.url}/metrics").text
        assert 'altinn_receiver_events_rejected_total{reason="store_unavailable"} 1.0' in rejected
    assert len(inbox_rows(config.store.path, "id = ?", event["id"])) == 1


def cap_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_file_size_limit_gets_503_not_a_dead_server_and_every_200_is_stored(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, preexec_fn=lambda: cap_file_size(512 * 1024))
    accepted: list[str] = []
    with serve, httpx.Client(timeout=30) as client:
        url = webhook(serve.url)
        refused = None
        for _ in range(400):
            event = new_event(padding="p" * 8000)
            response = push(client, url, event)
            if response.status_code == 200:
                accepted.append(event["id"])
                continue
            refused = response
            break
        assert refused is not None, "the file size limit was never reached"
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        assert "disk" in refused.json()["detail"]
        assert client.get(f"{serve.url}/healthz").status_code == 200
        assert push(client, url, new_event(padding="p" * 8000)).status_code == 503
        assert serve.process is not None and serve.process.poll() is None
    stored = {row["id"] for row in inbox_rows(serve.store)}
    assert accepted and stored == set(accepted)
    assert count(serve.store) == len(accepted)
