"""Benchmark the broker handlers: events/s through fetch_correspondence + forward_amqp (publisher confirms) and +
forward_nats (JetStream acks), against the same pipeline ending in `store`, in one run.

    .venv/bin/python bench/brokers.py [--events 4000] [--per-correspondence 5] [--concurrency 16] [--json]

The simulator runs in its own process, adding no latency; RabbitMQ (127.0.0.1:5672, guest/guest) and NATS with
JetStream (127.0.0.1:4222) are the machine's. For each pipeline the same correspondences get a backlog of their own
(`--events`, `--per-correspondence` per correspondence, shuffled `time`s) written straight into a fresh inbox, and
`altinn-receiver serve` (a subprocess, `[dispatch] concurrency`) works through it; the rate is taken from 10 % to 90 %
done. The broker runs publish to a queue (through the default exchange) and a stream of their own, which are counted
afterwards (every event must be there once) and deleted. Prints a table; `--json` for a machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import uuid
from collections.abc import Awaitable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import httpx
import nats
import nats.js.errors
from prometheus_client.parser import text_string_to_metric_families

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (
    SimulatorProcess,
    Steady,
    cpu_seconds,
    drain,
    progress,
    send_correspondences,
    serving,
    write_backlog,
)
from receiver.onboarding.demo import SERVICE_OWNER_ORG, Identity, ReceiverSetup, register_identity

T = TypeVar("T")

RESOURCE = "urn:altinn:resource:bench-brokers"
RECIPIENT_ORG = "312345678"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
PIPELINES = ("store", "forward_amqp", "forward_nats")


def run(work: Awaitable[T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(60):
            return await work

    return asyncio.run(bounded())


async def amqp_queue(name: str, *, delete: bool = False) -> int:
    """Declare queue `name` (or delete it); how many messages it holds."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        if delete:
            await channel.queue_delete(name)
            return 0
        queue = await channel.declare_queue(name, durable=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def nats_stream(name: str, *, delete: bool = False) -> int:
    """Create stream `name` over `name.>` (or delete it); how many messages it holds."""
    client = await nats.connect(NATS_URL, allow_reconnect=False)
    try:
        jetstream = client.jetstream()
        if delete:
            await jetstream.delete_stream(name)
            return 0
        try:
            return int((await jetstream.stream_info(name)).state.messages)
        except nats.js.errors.NotFoundError:
            await jetstream.add_stream(name=name, subjects=[f"{name}.>"])
            return 0
    finally:
        await client.close()


BROKER_PROCESSES = {"forward_amqp": "beam.smp", "forward_nats": "nats-server"}
"""The broker's server process, by its name (/proc/PID/comm), whose CPU time a run adds to the receiver's."""


def broker_cpu_seconds(pipeline: str) -> float:
    """CPU time the pipeline's broker has used so far (0 for `store`: it has none)."""
    name = BROKER_PROCESSES.get(pipeline)
    if name is None:
        return 0.0
    pids = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/comm") if p.read_text().strip() == name]
    return sum(cpu_seconds(pid) for pid in pids)


def handler_section(pipeline: str, name: str) -> str:
    """The `[handlers.NAME]` section of a broker pipeline, publishing to `name` (a queue, a stream)."""
    if pipeline == "forward_amqp":
        return f'[handlers.forward_amqp]\nurl = "{AMQP_URL}"\nrouting_key = "{name}"\n'
    if pipeline == "forward_nats":
        return f'[handlers.forward_nats]\nurl = "{NATS_URL}"\nsubject = "{name}.{{type}}"\nstream = "{name}"\n'
    return ""


def mean_ms(metrics: str, histogram: str, **labels: str) -> float:
    """The mean of a histogram on a receiver's /metrics, in milliseconds (0 when it has no samples)."""
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name in (f"{histogram}_sum", f"{histogram}_count") and sample.labels == labels
    }
    count = values.get(f"{histogram}_count", 0.0)
    return round(values[f"{histogram}_sum"] / count * 1000, 1) if count else 0.0


def delivered(pipeline: str, name: str, store: Path) -> int:
    if pipeline == "forward_amqp":
        return run(amqp_queue(name))
    if pipeline == "forward_nats":
        return run(nats_stream(name))
    with closing(sqlite3.connect(store)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM correspondence_events").fetchone()[0])


def measure(
    pipeline: str, sim_url: str, identity: Identity, correspondences: list[str], args: argparse.Namespace, folder: Path
) -> dict[str, Any]:
    """One pipeline through its own backlog of the same correspondences."""
    say = progress(args.json)
    folder.mkdir()
    name = f"bench-{uuid.uuid4().hex[:10]}"
    if pipeline == "forward_amqp":
        run(amqp_queue(name))
    elif pipeline == "forward_nats":
        run(nats_stream(name))
    pipelines = (
        f'[[pipelines]]\ntypes = ["no.altinn.correspondence.*"]\nhandlers = ["fetch_correspondence", "{pipeline}"]\n'
    )
    setup = ReceiverSetup(sim_url, identity, folder / "receiver.db", [], catchup={"enabled": False},
                          dispatch={"concurrency": args.concurrency, "poll_interval": "200ms"},
                          extra=pipelines + handler_section(pipeline, name))  # fmt: skip
    config = folder / "receiver.toml"
    setup.write(config)
    total = write_backlog(setup.store, RESOURCE, correspondences, args.per_correspondence, random.Random(1))
    say(f"{pipeline}: {total} events...")
    try:
        broker_before = broker_cpu_seconds(pipeline)
        # One process, as the numbers in bench/README.md were measured.
        with serving(config, folder, "--single-process") as process:
            samples = drain(process, setup.store, total, args.sample_interval, say)
            metrics = httpx.get(f"http://127.0.0.1:{setup.port}/metrics", timeout=30).text
        broker_cpu = broker_cpu_seconds(pipeline) - broker_before
        arrived = delivered(pipeline, name, setup.store)
    finally:
        if pipeline == "forward_amqp":
            run(amqp_queue(name, delete=True))
        elif pipeline == "forward_nats":
            run(nats_stream(name, delete=True))
    steady = Steady.of(samples, total)
    return {
        "pipeline": f"fetch_correspondence + {pipeline}",
        "events": total,
        "steady_per_s": round(steady.per_s, 1),
        "overall_per_s": round(total / samples[-1][0], 1),
        "receiver_cpu_ms_per_event": round(steady.cpu_ms_per_event, 2),
        "broker_cpu_ms_per_event": round(broker_cpu / total * 1000, 2),
        "pipeline_ms_mean": mean_ms(metrics, "altinn_receiver_dispatch_seconds"),
        "forward_ms_mean": mean_ms(metrics, "altinn_receiver_forward_seconds", handler=pipeline),
        "delivered": arrived,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="events per pipeline run (default 3000)")
    parser.add_argument("--per-correspondence", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each pipeline, in turn (default 2)")
    parser.add_argument("--sample-interval", type=float, default=0.2, help="seconds between samples (default 0.2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-brokers-"))
    # Every other round in reverse (store, amqp, nats, nats, amqp, store): a machine that slows or speeds up during
    # the run weighs on each pipeline alike.
    order = [p for r in range(args.rounds) for p in (PIPELINES if r % 2 == 0 else PIPELINES[::-1])]
    with SimulatorProcess(folder) as sim:
        sim.set_resource_owner(RESOURCE, SERVICE_OWNER_ORG)
        identity = register_identity(sim, folder)
        correspondences = send_correspondences(sim, RESOURCE, RECIPIENT_ORG, args.events // args.per_correspondence)
        runs = [measure(p, sim.url, identity, correspondences, args, folder / f"{n}-{p}") for n, p in enumerate(order)]
    rates = {
        p: round(statistics.median(r["steady_per_s"] for r in runs if r["pipeline"].endswith(p)), 1) for p in PIPELINES
    }
    result = {
        "concurrency": args.concurrency,
        "runs": runs,
        "median_steady_per_s": rates,
        "amqp_of_store": round(rates["forward_amqp"] / rates["store"], 3),
        "nats_of_store": round(rates["forward_nats"] / rates["store"], 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    columns = list(runs[0])
    widths = {name: max(len(name), *(len(str(r[name])) for r in runs)) for name in columns}
    print("  ".join(f"{name:>{widths[name]}}" for name in columns))
    for r in runs:
        print("  ".join(f"{r[name]!s:>{widths[name]}}" for name in columns))
    print(f"median events/s: {rates}")
    print(f"forward_amqp / store: {result['amqp_of_store']}   forward_nats / store: {result['nats_of_store']}")
    print(f"(files in {folder})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
