"""Benchmark how soon a pushed event runs: `serve` as one process, and as its webhook and worker processes.

    .venv/bin/python bench/wakeup.py [--events 200] [--gap 0.02] [--postgres SERVER] [--json]

In one process the webhook's commit wakes the dispatcher directly. In two, the worker learns of the commit from the
store: on SQLite by watching `PRAGMA data_version` every 10 ms (receiver/store/inbox_watch.py), on PostgreSQL by
`LISTEN`/`NOTIFY`. `[dispatch] poll_interval` is set to an hour, so a slow wake-up cannot hide behind a poll.

For each mode and store, `--events` events (each its own correspondence, which the default pipelines only `store`)
are pushed one every `--gap` seconds; an event's latency is from `received_at` (the webhook read it) to `updated_at`
of its `done` outcome, both written by the receiver, so the measuring adds nothing. Prints p50/p99/max per run.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.support import REPO, add_postgres_option, temporary_database, wait_listening
from receiver.server_thread import free_port

SECRET = "correct-horse-battery-staple-0123456789"
MODES = {"one process (--single-process)": ["--single-process"], "two processes (serve)": []}
Times = list[tuple[str, str]]


def run(
    mode: list[str], store_toml: str, times: Callable[[], Times], events: int, gap: float, work: Path
) -> dict[str, float]:
    """Push `events` into `serve MODE` on the store, wait until each is done; latency percentiles in ms."""
    port = free_port()
    config = work / f"{uuid.uuid4().hex[:8]}.toml"
    config.write_text(
        f'[receiver]\nport = {port}\nsecret = "{SECRET}"\n\n{store_toml}\n'
        '[dispatch]\npoll_interval = "1h"\n\n[catchup]\nenabled = false\n'
    )
    with (work / "serve.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--config", str(config), *mode],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
    try:
        wait_listening(f"http://127.0.0.1:{port}/healthz", process, work / "serve.log")
        with httpx.Client(timeout=10) as client:
            for n in range(events):
                event = {
                    "specversion": "1.0", "id": str(uuid.uuid4()), "time": "2025-03-14T09:26:53Z",
                    "source": "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",
                    "type": "no.altinn.correspondence.correspondencepublished",
                    "resource": "urn:altinn:resource:bench-wakeup", "resourceinstance": f"wakeup-{n}",
                }  # fmt: skip
                client.post(f"http://127.0.0.1:{port}/events?code={SECRET}", json=event).raise_for_status()
                time.sleep(gap)
        deadline = time.monotonic() + 60
        while len(found := times()) < events:
            if time.monotonic() > deadline:
                sys.exit(f"error: {len(found)} of {events} events done after 60 s; see {work / 'serve.log'}")
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(60)
    ms = sorted((_at(done) - _at(received)) * 1000 for received, done in found)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
        "max_ms": round(ms[-1], 2),
    }


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


DONE = "SELECT received_at, updated_at FROM inbox WHERE status = 'done'"


def sqlite_times(path: Path) -> Callable[[], Times]:
    def times() -> Times:
        if not path.exists():
            return []
        with closing(sqlite3.connect(path)) as conn:
            return [tuple(row) for row in conn.execute(DONE)]

    return times


def postgres_times(url: str) -> Callable[[], Times]:
    import psycopg  # the postgres extra: only a run on PostgreSQL needs it

    def times() -> Times:
        with psycopg.connect(url) as conn:
            return [tuple(row) for row in conn.execute(DONE).fetchall()]

    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200, help="events per run (default 200)")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between two pushes (default 0.02)")
    add_postgres_option(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-wakeup-") as folder:
        work = Path(folder)
        for name, mode in MODES.items():
            store = work / f"{uuid.uuid4().hex[:8]}.db"
            result = run(mode, f'[store]\npath = "{store}"\n', sqlite_times(store), args.events, args.gap, work)
            runs.append({"mode": name, "store": "sqlite", **result})
            if args.postgres:
                with temporary_database(args.postgres) as url:
                    result = run(mode, f'[store]\nurl = "{url}"\n', postgres_times(url), args.events, args.gap, work)
                runs.append({"mode": name, "store": "postgresql", **result})
    if args.json:
        print(json.dumps({"events": args.events, "runs": runs}))
        return
    print(f"push to done, {args.events} events, one every {args.gap * 1000:g} ms")
    for r in runs:
        print(f"  {r['mode']:<32} {r['store']:<11} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
              f"max {r['max_ms']:7.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
