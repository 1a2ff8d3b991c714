"""Benchmark the dispatcher: events/s through fetch_correspondence + store, and the receiver's memory over a backlog.

    .venv/bin/python bench/pipeline.py [--events 50000] [--per-correspondence 5] [--concurrency 16] [--latency 0.05]

The simulator runs in its own process (in this one it would share a GIL with the sampling loop, and its CPU time
would count against the receiver) with a fault rule adding `--latency` to every Correspondence API call. A backlog
of `--events` events (`--per-correspondence` events per correspondence, with shuffled `time`s, so the per-instance
ordering is exercised) is written to the inbox with the inbox's own INSERT, then `altinn-receiver serve` (a
subprocess, the service-owner default pipelines) works through it with `[dispatch] concurrency`. Each event costs
one API call, so the ideal is concurrency / latency events per second. The receiver's RSS and CPU time are read from
/proc every `--sample-interval` seconds while it runs (it never loads the backlog: it claims at most `concurrency`
events at a time); CPU milliseconds per event compare runs on a machine shared with other work, where events/s alone
would not. Prints a table; `--json` for a machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (
    SimulatorProcess,
    Steady,
    drain,
    progress,
    reached,
    send_correspondences,
    serving,
    write_backlog,
)
from receiver.onboarding.demo import SERVICE_OWNER_ORG, ReceiverSetup, register_identity

RESOURCE = "urn:altinn:resource:bench-pipeline"
RECIPIENT_ORG = "312345678"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--per-correspondence", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every Correspondence API call")
    parser.add_argument("--sample-interval", type=float, default=1.0, help="seconds between /proc samples (default 1)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(1)
    folder = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    say = progress(args.json)

    with SimulatorProcess(folder) as sim:
        sim.set_resource_owner(RESOURCE, SERVICE_OWNER_ORG)
        identity = register_identity(sim, folder)
        setup = ReceiverSetup(sim.url, identity, folder / "receiver.db", [], catchup={"enabled": False},
                              dispatch={"concurrency": args.concurrency, "poll_interval": "200ms"})  # fmt: skip
        config = folder / "receiver.toml"
        setup.write(config)
        count = args.events // args.per_correspondence
        say(f"sending {count} correspondences to the simulator...")
        correspondences = send_correspondences(sim, RESOURCE, RECIPIENT_ORG, count)
        say(f"writing a backlog of {count * args.per_correspondence} events...")
        total = write_backlog(setup.store, RESOURCE, correspondences, args.per_correspondence, rng)
        sim.admin.put("/faults", json={"path": "/correspondence/api/v1/*", "latency": f"{args.latency * 1000:g}ms"})

        # One process, as the numbers in bench/README.md were measured.
        with serving(config, folder, "--single-process") as process:
            samples = drain(process, setup.store, total, args.sample_interval, say)

    t10, _, rss10, _ = reached(samples, 0.10, total)
    steady = Steady.of(samples, total)
    ideal = args.concurrency / args.latency
    rss_peak = max(s[2] for s in samples if s[0] >= t10)
    with closing(sqlite3.connect(setup.store)) as conn:
        dead = conn.execute("SELECT COUNT(*) FROM inbox WHERE status = 'dead'").fetchone()[0]
        stored = conn.execute("SELECT COUNT(*) FROM correspondence_events").fetchone()[0]
    result = {
        "events": total,
        "concurrency": args.concurrency,
        "latency_ms": args.latency * 1000,
        "ideal_per_s": round(ideal, 1),
        "steady_per_s": round(steady.per_s, 1),
        "of_ideal": round(steady.per_s / ideal, 3),
        "overall_per_s": round(total / samples[-1][0], 1),
        "receiver_cpu_ms_per_event": round(steady.cpu_ms_per_event, 2),
        "receiver_cpu_of_a_core": round(steady.cpu_of_a_core, 2),
        "rss_at_10pct_mb": round(rss10, 1),
        "rss_peak_after_mb": round(rss_peak, 1),
        "rss_growth_mb": round(rss_peak - rss10, 1),
        "dead": dead,
        "stored_events": stored,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'measure':<40} {'value':>12}")
    for key, value in result.items():
        print(f"{key:<40} {value:>12}")
    print(f"(files in {folder})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
