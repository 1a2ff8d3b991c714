"""Benchmark: what traces cost the webhook. `POST /events` of the receiver as bench/ingest.py's (b) runs it (`serve`
without background services, durable inbox, unique ids) under wrk, with traces off and with traces on (every push a
span, exported over OTLP/HTTP to a collector stand-in on loopback that answers 200), the two alternated `--rounds`
times in one run. `--baseline PATH` (repeatable) adds the same receiver from another checkout (a release before
traces, say; or a copy of this one, to see how far two runs of the same code differ), served by that checkout's own
bench/ingest.py.

It also times, in this process, what the code adds to a push while traces are off (the `on()` check, the extra
coroutine hop into the untraced path, `traceparent()` for the insert) against the same loop without them.

Run with `.venv/bin/python bench/traces.py` (`--help`). Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import PUSH_BODY, SECRET
from bench.support import REPO, Result, WrkLoad, ensure_wrk, wait_listening, warm_then_measure, wrk_script
from receiver.observability import tracing
from receiver.server_thread import ServerThread, free_port

# The SDK's batch processor, sized so that no span is dropped at a few thousand pushes a second.
BATCHING = {
    "OTEL_BSP_MAX_QUEUE_SIZE": "65536",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
    "OTEL_BSP_SCHEDULE_DELAY": "500",
}


class CollectorStandIn:
    """Takes OTLP/HTTP exports and answers 200 with an empty ExportTraceServiceResponse; counts what it got."""

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        self.app = Starlette(routes=[Route("/v1/traces", self.traces, methods=["POST"])])

    async def traces(self, request: Request) -> Response:
        self.exports += 1
        self.bytes += len(await request.body())
        return Response(b"", media_type="application/x-protobuf")


def measure_receiver(
    name: str, tree: Path, env: dict[str, str], args: argparse.Namespace, wrk: str, work: Path, script: Path
) -> Result:
    """wrk against `serve` (bench/ingest.py's --serve-receiver of the checkout at `tree`) on a fresh store."""
    port = free_port()
    store = work / f"{len(list(work.glob('*.db')))}.db"
    config = work / "receiver.toml"
    config.write_text(f'[receiver]\nport = {port}\nsecret = "{SECRET}"\n\n[store]\npath = "{store}"\n')
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, **env}
    with (work / "serve.log").open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, str(tree / "bench" / "ingest.py"), "--serve-receiver", str(config)],
            stdout=log, stderr=log, cwd=tree, env=environ,
        )  # fmt: skip
        try:
            wait_listening(f"http://127.0.0.1:{port}/healthz", server, work / "serve.log")
            url = f"http://127.0.0.1:{port}/events?code={SECRET}"
            return warm_then_measure(wrk, url, script, WrkLoad.from_args(args), name, server.pid)
        finally:
            server.terminate()
            server.wait()


async def _off_path(rounds: int) -> tuple[float, float]:
    """ns per iteration of a push's untraced path with what traces add while off, and without it."""

    async def body() -> int:
        return 200

    async def respond() -> int:
        if tracing.on():
            raise AssertionError("traces must be off in the benchmark process")
        status = await body()
        tracing.traceparent()
        return status

    async def plain() -> int:
        return await body()

    timings: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(5):
        for label, step in (("with", respond), ("without", plain)):
            started = time.perf_counter_ns()
            for _ in range(rounds):
                await step()
            timings[label].append((time.perf_counter_ns() - started) / rounds)
    return min(timings["with"]), min(timings["without"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    WrkLoad.add_arguments(parser, threads_help="wrk threads (default 1: leave the cores to the server)")
    parser.add_argument("--rounds", type=int, default=2, help="times each configuration runs, alternated (default 2)")
    parser.add_argument(
        "--baseline", type=Path, action="append", default=[], help="another checkout to measure beside this one"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    wrk = ensure_wrk()
    collector = CollectorStandIn()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="altinn-receiver-bench-") as tmp, ServerThread(collector.app) as sink:
        work = Path(tmp)
        script = work / "push.lua"
        script.write_text(wrk_script(PUSH_BODY))
        traces_on = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, **BATCHING}
        configurations = [("traces off", REPO, {}), ("traces on, exported", REPO, traces_on)]
        configurations[:0] = [(f"baseline {tree.name}", tree.resolve(), {}) for tree in args.baseline]
        for round_ in range(1, args.rounds + 1):
            for name, tree, env in configurations:
                results.append(measure_receiver(f"{name} (round {round_})", tree, env, args, wrk, work, script))
    with_off, without = asyncio.run(_off_path(200_000))
    by_name = {name: [r for r in results if r.name.startswith(name)] for name, _, _ in configurations}
    summary = {
        name: {
            "requests_per_s": statistics.median(r.requests_per_s for r in runs),
            "loop_cpu_us": statistics.median(r.loop_cpu_us for r in runs),
            "process_cpu_us": statistics.median(r.process_cpu_us for r in runs),
        }
        for name, runs in by_name.items()
    }
    off_path = {
        "with_ns": round(with_off, 1),
        "without_ns": round(without, 1),
        "added_ns": round(with_off - without, 1),
    }
    exported = {"exports": collector.exports, "bytes": collector.bytes}
    load = os.getloadavg()[0]
    if args.json:
        output = {"results": [r.__dict__ for r in results], "summary": summary, "off_path": off_path}
        print(json.dumps({**output, "collector": exported, "load": load}))
        return
    print(f"{'':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'loop µs/req':>12} {'process µs/req':>15}  errors")
    for r in results:
        print(
            f"{r.name:40} {r.requests_per_s:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.loop_cpu_us:12.0f}"
            f" {r.process_cpu_us:15.0f}  {r.errors}"
        )
    for name, numbers in summary.items():
        print(f"median of {name}: {numbers['requests_per_s']:.0f} req/s, loop {numbers['loop_cpu_us']:.0f} µs/req,"
              f" process {numbers['process_cpu_us']:.0f} µs/req")  # fmt: skip
    print(f"what the code adds to a push while traces are off: {off_path['added_ns']:.0f} ns"
          f" ({off_path['with_ns']:.0f} against {off_path['without_ns']:.0f} ns per iteration)")  # fmt: skip
    print(f"the collector stand-in took {collector.exports} exports, {collector.bytes / 1e6:.1f} MB")
    print(f"cpus: {os.cpu_count()}, load average {load:.1f}, wrk: {args.connections} connections, {args.seconds}s")


if __name__ == "__main__":
    main()
