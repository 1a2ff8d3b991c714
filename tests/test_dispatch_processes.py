"""Several processes claiming from one store at once, on each backend: every event is done exactly once, no two
processes ever run events of one `resourceinstance` at the same time, and each instance's events start in their
order (`time`). Retries fall due while the others claim, the case where row locks alone would let two processes
start two events of one instance on PostgreSQL (receiver/store/queue.py)."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from receiver.config import StoreConfig
from receiver.store.inbox import insert_event
from receiver.store.records import NewEvent
from tests.store_backends import event, rows, run_on
from tests.support import REPO

PROCESSES = 3
INSTANCES = 24
PER_INSTANCE = 5


def events(rng: random.Random) -> list[NewEvent]:
    """`PER_INSTANCE` events of each instance, their times shuffled against the order they arrive in."""
    made = [
        event(f"instance-{i}", f"2026-01-05T10:00:{s:02d}.{rng.randrange(10**6):06d}Z")
        for i in range(INSTANCES)
        for s in rng.sample(range(60), PER_INSTANCE)
    ]
    rng.shuffle(made)
    return made


def claim_in_processes(store: StoreConfig, tmp_path: Path) -> list[dict[str, Any]]:
    store_json = json.dumps({"url": store.url} if store.url else {"path": str(store.path)})
    logs = [tmp_path / f"claims-{n}.jsonl" for n in range(PROCESSES)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.claims_support", store_json, f"process-{n}", str(log)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n, log in enumerate(logs)
    ]
    for worker in workers:  # each connected, before any claims: else one still starting may find nothing left
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.close()
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    return [json.loads(line) for log in logs for line in log.read_text(encoding="utf-8").splitlines()]


def test_processes_claiming_at_once_keep_each_instance_to_one_run_at_a_time_in_order(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    made = events(random.Random(18))

    async def add(db: Any) -> None:
        for new in made:
            assert await insert_event(db, new, "push")

    run_on(store_config, add)
    runs = claim_in_processes(store_config, tmp_path)

    assert {row["status"] for row in rows(store_config, "SELECT status FROM inbox")} == {"done"}
    finished = [run for run in runs if run["attempt"] == max(r["attempt"] for r in runs if r["id"] == run["id"])]
    assert sorted(run["id"] for run in finished) == sorted(e.id for e in made)  # each done once, by one process
    assert len({run["owner"] for run in runs}) == PROCESSES  # they all took part

    by_instance: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_instance[run["instance"]].append(run)
    time_of = {e.id: e.time for e in made}
    for instance, its_runs in by_instance.items():
        its_runs.sort(key=lambda run: run["started"])
        for earlier, later in itertools.pairwise(its_runs):
            assert later["started"] >= earlier["ended"], f"two runs of {instance} at once: {earlier} and {later}"
        first_starts = [run["id"] for run in its_runs if run["attempt"] == 1]
        assert first_starts == sorted(first_starts, key=time_of.__getitem__), f"{instance} out of order"
