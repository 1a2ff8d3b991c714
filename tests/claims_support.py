"""A claiming process for tests/test_dispatch_processes.py: `python -m tests.claims_support STORE_JSON OWNER LOG`
claims from the store as the dispatcher does (several events a claim, each run in a task of its own), writes one
JSON line per run to LOG (when it started and ended on the machine's monotonic clock, which all processes share),
and finishes each run as done, or as retrying soon after (so that retries fall due while other processes claim).
It stops when the store holds no open event.

It starts claiming only when told to: once connected it writes "ready" to stdout and waits for a line on stdin, so
that the test can start every process's claims at once (starting a Python process took longer under load than the
others took to do all the work, and then one took no part).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

from receiver.config import StoreConfig
from receiver.store import queue
from receiver.store.backends import open_backend
from receiver.store.interface import Database
from receiver.store.records import InboxRecord
from receiver.timeutil import iso_after

LEASE = 60.0
RETRY_AFTER = 0.015
OPEN_EVENTS = "SELECT COUNT(*) AS n FROM inbox WHERE status IN ('pending', 'retrying', 'processing')"


async def run_one(
    db: Database, owner: str, record: InboxRecord, log: list[dict[str, object]], rng: random.Random
) -> None:
    started = time.monotonic_ns()
    await asyncio.sleep(rng.uniform(0.0005, 0.004))
    ended = time.monotonic_ns()
    retry = record.attempts < 3 and rng.random() < 0.3
    status, due = ("retrying", iso_after(RETRY_AFTER)) if retry else ("done", "")
    log.append({"id": record.id, "instance": record.resourceinstance, "attempt": record.attempts, "owner": owner,
                "started": started, "ended": ended})  # fmt: skip
    assert await queue.finish(db, record.seq, owner, status, "again" if retry else "", due)


async def main(store: StoreConfig, owner: str, log_path: Path) -> None:
    rng = random.Random(owner)
    db = await open_backend(store).connect(background=True)
    log: list[dict[str, object]] = []
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        while True:
            claimed = await queue.claim(db, owner, LEASE, limit=3)
            if claimed:
                await asyncio.gather(*(run_one(db, owner, record, log, rng) for record in claimed))
                continue
            [left] = await db.fetch(
                "SELECT COUNT(*) AS n FROM inbox WHERE status IN ('pending', 'retrying', 'processing')"
            )
            if not left["n"]:
                break
            await asyncio.sleep(0.002)
    finally:
        await db.close()
        log_path.write_text("".join(json.dumps(line) + "\n" for line in log), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main(StoreConfig(**json.loads(sys.argv[1])), sys.argv[2], Path(sys.argv[3])))
