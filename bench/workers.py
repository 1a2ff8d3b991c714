"""Benchmark dispatch scaling on PostgreSQL: events/s through 1 worker process against 3, on one database.

    .venv/bin/python bench/workers.py [--events 1200] [--workers 1 3] [--concurrency 4] [--latency 0.25]
                                      [--rounds 1] [--postgres URL] [--json]

The simulator runs in its own process with a fault rule adding `--latency` (250 ms) to every Correspondence API
call, so that a worker's rate is set by how many events it has in flight, not by its CPU: each worker may run
`[dispatch] concurrency` (4) at a time, so the ideal is workers * concurrency / latency events/s (16 for one, 48 for
three), and the ratio of the two rates measures what the shared claims cost (SKIP LOCKED, the per-instance advisory
locks, leases) rather than the machine's cores. For each count of `--workers`, every round: a PostgreSQL database of
its own (created on `--postgres`, dropped after), a backlog of `--events` events (5 per correspondence, shuffled
times: per-correspondence order is kept across the workers) written straight into its inbox, then that many
`altinn-receiver serve --role worker` processes (the service-owner default pipelines, fetch_correspondence + store)
started at once on one config, each on a port of its own, until every event is done. Events/s is measured from 10 %
to 90 % done. Prints each run, the median per worker count, and the last count's median over the first's.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (
    SimulatorProcess,
    Steady,
    add_postgres_option,
    drain,
    progress,
    send_correspondences,
    serving,
    temporary_database,
    write_backlog,
)
from receiver.onboarding.demo import SERVICE_OWNER_ORG, ReceiverSetup, register_identity
from receiver.server_thread import free_port

RESOURCE = "urn:altinn:resource:bench-workers"
RECIPIENT_ORG = "312345678"
PER_CORRESPONDENCE = 5


def run(args: argparse.Namespace, sim: SimulatorProcess, folder: Path, workers: int, correspondences: list[str],
        say: Any) -> dict[str, Any]:  # fmt: skip
    """`workers` worker processes draining a fresh backlog in a database of their own."""
    with temporary_database(args.postgres) as url:
        setup = ReceiverSetup(sim.url, register_identity(sim, folder), folder / "unused.db", [], store_url=url,
                              catchup={"enabled": False},
                              dispatch={"concurrency": args.concurrency, "poll_interval": "200ms"})  # fmt: skip
        config = folder / f"workers-{workers}.toml"
        setup.write(config)
        total = write_backlog(url, RESOURCE, correspondences, PER_CORRESPONDENCE, random.Random(1))
        with ExitStack() as stack:
            logs = [f"worker-{workers}-{index}.log" for index in range(workers)]
            role = ("--role", "worker", "--port")
            processes = [stack.enter_context(serving(config, folder, *role, str(free_port()), log=log)) for log in logs]
            samples = drain(processes, url, total, args.sample_interval, say)
    steady = Steady.of(samples, total)
    ideal = workers * args.concurrency / args.latency
    return {
        "workers": workers,
        "events": total,
        "ideal_per_s": round(ideal, 1),
        "steady_per_s": round(steady.per_s, 1),
        "of_ideal": round(steady.per_s / ideal, 3),
        "overall_per_s": round(total / samples[-1][0], 1),
        "cpu_ms_per_event": round(steady.cpu_ms_per_event, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1200, help="backlog per run (default 1200)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3], help="worker counts to run (default 1 3)")
    parser.add_argument("--concurrency", type=int, default=4, help="[dispatch] concurrency of each worker (default 4)")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds added to each Correspondence API call")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each worker count, alternated (default 1)")
    parser.add_argument("--sample-interval", type=float, default=0.5, help="seconds between samples (default 0.5)")
    add_postgres_option(parser, optional=False)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = progress(args.json)
    folder = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    runs = []
    with SimulatorProcess(folder) as sim:
        sim.set_resource_owner(RESOURCE, SERVICE_OWNER_ORG)
        correspondences = send_correspondences(sim, RESOURCE, RECIPIENT_ORG, args.events // PER_CORRESPONDENCE)
        sim.admin.put("/faults", json={"path": "/correspondence/api/v1/*", "latency": f"{args.latency * 1000:g}ms"})
        for round_ in range(args.rounds):
            for workers in args.workers if round_ % 2 == 0 else reversed(args.workers):
                say(f"round {round_ + 1}: {workers} worker(s)...")
                runs.append(run(args, sim, folder, workers, correspondences, say))
                say(f"  {runs[-1]['steady_per_s']} events/s ({runs[-1]['of_ideal']:.0%} of the ideal)")
    medians = {str(w): statistics.median(r["steady_per_s"] for r in runs if r["workers"] == w) for w in args.workers}
    first, last = str(args.workers[0]), str(args.workers[-1])
    result = {"runs": runs, "median_per_s": medians, "scaling": round(medians[last] / medians[first], 2)}
    if args.json:
        print(json.dumps(result))
        return
    columns = list(runs[0])
    print("  ".join(f"{c:>16}" for c in columns))
    for r in runs:
        print("  ".join(f"{r[c]:>16}" for c in columns))
    print(f"{last} workers / {first}: {result['scaling']} (target >= 2.5 for 3 against 1)")
    print(f"(files in {folder})")


if __name__ == "__main__":
    main()
