"""Benchmark what the attempt history costs the dispatcher: events/s through a pipeline of one `log` handler, so that
the dispatcher's own store statements (claims, lease renewals, outcomes) are nearly all the work, with the
`attempts` row written in each outcome's transaction and without it (`Dispatcher(history=False)`, the baseline), on
SQLite and on PostgreSQL, in one run.

    .venv/bin/python bench/history.py [--events 3000] [--rounds 3] [--concurrency 8]
                                      [--postgres postgresql://postgres@127.0.0.1:5432] [--json]

Each round drains a fresh backlog of `--events` events (each of its own `resourceinstance`, so every slot is busy) on
each backend, once with the history and once without, the order alternating from round to round. The dispatcher runs
in this process on the receiver's own runtime (the store opened and migrated as `serve` does), and is timed from its
start until its counters say every event is done; CPU time is this process's (the dispatcher, its store connection's
thread; PostgreSQL's server work is not in it). Prints the median events/s and CPU µs per event of each, how much
the history costs, and each round's events/s (their spread says how much to trust the difference). Not a test:
numbers depend on the machine (and on whatever else runs on it).
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
from contextlib import ExitStack
from pathlib import Path

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import add_postgres_option, progress, temporary_database
from receiver.config import load_config
from receiver.runtime import Runtime
from receiver.store.records import NewEvent
from receiver.worker.dispatcher import Dispatcher
from receiver.worker.pipelines import load_pipelines

TYPE = "no.altinn.correspondence.correspondencepublished"
RESOURCE = "urn:altinn:resource:bench-history"


def config_text(store: str, concurrency: int) -> str:
    return (
        f"[receiver]\nallow_no_secret = true\n\n[store]\n{store}\n\n"
        f'[dispatch]\nconcurrency = {concurrency}\npoll_interval = "50ms"\n\n'
        '[catchup]\nenabled = false\n\n[[pipelines]]\ntypes = ["*"]\nhandlers = ["log"]\n'
    )


def backlog(count: int) -> list[NewEvent]:
    events = []
    for _ in range(count):
        event_id, instance = str(uuid.uuid4()), str(uuid.uuid4())
        raw = {"specversion": "1.0", "id": event_id, "type": TYPE, "source": "bench", "resource": RESOURCE,
               "resourceinstance": instance}  # fmt: skip
        events.append(NewEvent(event_id, TYPE, "bench", "", RESOURCE, instance, "", json.dumps(raw)))
    return events


async def drain(config_path: Path, events: int, history: bool) -> dict[str, float]:
    """A fresh backlog of `events` in the store, drained by one dispatcher; its events/s and CPU µs per event."""
    config = load_config(config_path)
    runtime = await Runtime.open(config)
    try:
        stored = await asyncio.gather(*(runtime.writer.insert_event(e, "push") for e in backlog(events)))
        assert all(stored), "the backlog's ids are new"
        dispatcher = Dispatcher(load_pipelines(config), config.dispatch, history=history)
        started, cpu = time.monotonic(), time.process_time()
        await dispatcher.start(runtime)
        while dispatcher.status()["done"] < events:
            await asyncio.sleep(0.01)
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        await dispatcher.stop(time.monotonic() + 10)
        rows = await runtime.store.fetch("SELECT COUNT(*) AS n FROM attempts")
        assert int(rows[0]["n"]) == (events if history else 0), "one row per run with the history, none without"
    finally:
        await runtime.close()
    return {"per_s": events / elapsed, "cpu_us_per_event": cpu / events * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000, help="events per drain (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="drains of each kind per backend (default 3)")
    parser.add_argument("--concurrency", type=int, default=8, help="[dispatch] concurrency (default 8)")
    add_postgres_option(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = progress(args.json)
    results: dict[tuple[str, bool], list[dict[str, float]]] = {}
    backends = ["sqlite", *(["postgresql"] if args.postgres else [])]
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        for round_number in range(args.rounds):
            for backend in backends:
                order = (True, False) if round_number % 2 == 0 else (False, True)
                for history in order:
                    say(f"round {round_number + 1}: {backend}, history {'on' if history else 'off'}")
                    folder = Path(tmp) / f"{backend}-{round_number}-{history}"
                    folder.mkdir()
                    with ExitStack() as stack:
                        if backend == "sqlite":
                            store = f'path = "{folder / "receiver.db"}"'
                        else:
                            store = f'url = "{stack.enter_context(temporary_database(args.postgres))}"'
                        config = folder / "receiver.toml"
                        config.write_text(config_text(store, args.concurrency), encoding="utf-8")
                        result = asyncio.run(drain(config, args.events, history))
                    results.setdefault((backend, history), []).append(result)
    runs = []
    for backend in backends:
        on, off = (
            {
                key: statistics.median(r[key] for r in results[(backend, history)])
                for key in ("per_s", "cpu_us_per_event")
            }
            for history in (True, False)
        )
        each = {history: [round(r["per_s"], 1) for r in results[(backend, history)]] for history in (True, False)}
        runs.append({"backend": backend, "events": args.events, "rounds": args.rounds,
                     "with_history_per_s": round(on["per_s"], 1), "without_history_per_s": round(off["per_s"], 1),
                     "with_history_cpu_us_per_event": round(on["cpu_us_per_event"], 1),
                     "without_history_cpu_us_per_event": round(off["cpu_us_per_event"], 1),
                     "throughput_change_percent": round((on["per_s"] / off["per_s"] - 1) * 100, 1),
                     "with_history_rounds_per_s": each[True], "without_history_rounds_per_s": each[False]})  # fmt: skip
    if args.json:
        print(json.dumps(runs))
        return
    print(f"{'backend':<11} {'with /s':>9} {'without /s':>11} {'change':>8} {'cpu µs with':>12} {'without':>8}"
          "  rounds /s with | without")  # fmt: skip
    for r in runs:
        spread = " ".join(map(str, r["with_history_rounds_per_s"])) + " | "
        spread += " ".join(map(str, r["without_history_rounds_per_s"]))
        print(f"{r['backend']:<11} {r['with_history_per_s']:9.1f} {r['without_history_per_s']:11.1f}"
              f" {r['throughput_change_percent']:7.1f}% {r['with_history_cpu_us_per_event']:12.1f}"
              f" {r['without_history_cpu_us_per_event']:8.1f}  {spread}")  # fmt: skip


if __name__ == "__main__":
    main()
