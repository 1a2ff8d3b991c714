"""Benchmark catch-up: events/s from the simulator's pull API into each store, against a bare reader of the same API.

    .venv/bin/python bench/catchup.py [--events 100000] [--rounds 3] [--postgres URL] [--json]

The simulator runs in its own process (`altinn-receiver simulator`) holding `--events` correspondence events of one
resource, published without pushes. Each round, in this process and in this order:

- **bare**: a reader that pages the same pull API with the receiver's own client (`EventsApi.iter_pages`, 1 000
  events a page, the same token) and discards the events: what the API and the client allow;
- **sqlite**: `altinn-receiver catchup`'s run (`receiver.cli.catchup.catch_up_now`, `[catchup] start =
  "beginning"`) into a fresh store file, each page validated and committed and the cursor moved after it;
- **postgresql**: the same into a PostgreSQL database of its own, created for the round on `--postgres` and dropped
  after (`""` leaves it out).

Each run checks that it read (and stored) every event. Prints events/s per run, the median of each over the rounds,
and each store's median as a ratio to the bare reader's; the CPU time this process spent per event (the receiver's
side: the simulator and PostgreSQL are other processes). Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import CORRESPONDENCE_SOURCE, SimulatorProcess, add_postgres_option, progress, temporary_database
from receiver.altinn import AltinnClients
from receiver.cli.catchup import catch_up_now
from receiver.config import Config, StoreConfig, SubscriptionConfig
from receiver.onboarding.demo import SERVICE_OWNER_ORG, ReceiverSetup, register_identity

RESOURCE = "urn:altinn:resource:bench-catchup"
SUBJECT = "urn:altinn:organization:identifier-no:312345678"
PUBLISH_BATCH = 5000
PAGE_SIZE = 1000


@dataclass
class Run:
    """One timed run: what it was, how many events it read, in how many seconds, and this process's CPU seconds."""

    name: str
    events: int
    seconds: float
    cpu_seconds: float

    @property
    def per_s(self) -> float:
        return self.events / self.seconds


def publish(sim: SimulatorProcess, count: int) -> None:
    """`count` correspondence events of `RESOURCE` (as Altinn publishes them: about 400 bytes each), pull-only."""
    for start in range(0, count, PUBLISH_BATCH):
        batch = [
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "type": "no.altinn.correspondence.correspondencepublished",
                "source": CORRESPONDENCE_SOURCE,
                "subject": SUBJECT,
                "resource": RESOURCE,
                "resourceinstance": str(uuid.uuid4()),
                "time": "2026-01-05T10:00:00.0000000Z",
            }
            for _ in range(min(PUBLISH_BATCH, count - start))
        ]
        sim.admin.post("/events", json=batch, params={"push": "false"}, timeout=120).raise_for_status()


def timed(name: str, work: Callable[[], Coroutine[Any, Any, int]]) -> Run:
    started, cpu = time.perf_counter(), time.process_time()
    events = asyncio.run(work())
    return Run(name, events, time.perf_counter() - started, time.process_time() - cpu)


def bare(config: Config) -> Run:
    async def read() -> int:
        count = 0
        async with AltinnClients.from_config(config) as clients:
            async for page in clients.events.iter_pages(RESOURCE, "0", size=PAGE_SIZE):
                count += len(page.events)
        return count

    return timed("bare", read)


def catch_up(name: str, config: Config) -> Run:
    async def run() -> int:
        [result] = await catch_up_now(config, lambda result: None)
        if result.error:
            sys.exit(f"error: catch-up into {name} failed: {result.error}")
        return result.enqueued

    return timed(name, run)


def median(runs: list[Run], name: str) -> float:
    return statistics.median(run.per_s for run in runs if run.name == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the pull API (default 100000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three runs (default 3)")
    add_postgres_option(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = progress(args.json)
    folder = Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    runs: list[Run] = []

    with SimulatorProcess(folder) as sim:
        sim.set_resource_owner(RESOURCE, SERVICE_OWNER_ORG)
        setup = ReceiverSetup(sim.url, register_identity(sim, folder), folder / "receiver.db",
                              [SubscriptionConfig(RESOURCE)], catchup={"start": "beginning"})  # fmt: skip
        config = setup.write(folder / "receiver.toml")
        say(f"publishing {args.events} events to the simulator...")
        publish(sim, args.events)
        for round_ in range(args.rounds):
            runs.append(bare(config))
            store = folder / f"round-{round_}.db"
            runs.append(catch_up("sqlite", replace(config, store=replace(config.store, path=store))))
            if args.postgres:
                with temporary_database(args.postgres) as url:
                    runs.append(catch_up("postgresql", replace(config, store=StoreConfig(url=url))))
            for run in runs[-3:]:
                say(f"round {round_ + 1}: {run.name:<10} {run.per_s:9.0f} events/s")
    for run in runs:
        if run.events != args.events:
            sys.exit(f"error: {run.name} read {run.events} events of {args.events}")

    names = ["bare", "sqlite"] + (["postgresql"] if args.postgres else [])
    result = {
        "events": args.events,
        "rounds": args.rounds,
        "runs": [
            {"name": r.name, "per_s": round(r.per_s), "cpu_us_per_event": round(r.cpu_seconds / r.events * 1e6, 1)}
            for r in runs
        ],
        **{f"{name}_per_s": round(median(runs, name)) for name in names},
        **{f"{name}_of_bare": round(median(runs, name) / median(runs, "bare"), 3) for name in names[1:]},
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'run':<12} {'events/s':>10} {'CPU µs/event':>13}")
    for run in result["runs"]:
        print(f"{run['name']:<12} {run['per_s']:>10} {run['cpu_us_per_event']:>13}")
    for name in names[1:]:
        print(f"{name}: median {result[f'{name}_per_s']} events/s, {result[f'{name}_of_bare']} of the bare reader's"
              f" {result['bare_per_s']} (target >= 0.4)")  # fmt: skip
    print(f"(files in {folder})")


if __name__ == "__main__":
    main()
