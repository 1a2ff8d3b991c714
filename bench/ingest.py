"""Benchmark: a bare Starlette endpoint vs `POST /events` with the durable inbox on SQLite and on PostgreSQL, all
under wrk (32 connections).

Run with `make bench` (or `.venv/bin/python bench/ingest.py --help`). The servers run as subprocesses with the same
uvicorn settings on this machine, one after the other: (a) the bare endpoint, (b) the receiver on an SQLite file
(`synchronous=FULL`), (c) the receiver on a PostgreSQL database of its own, created for the run on `--postgres`
(`synchronous_commit = on`; "" leaves (c) out), both with unique event ids. Prints requests/s and p50/p99 latency
of each, the ratios b/a and c/a, the CPU time each server spent per request (its event loop's thread and the whole
process; PostgreSQL's own server processes are not counted) and how long an fsync takes on this disk. Not a test:
numbers depend on the machine.

The receiver runs exactly as `altinn-receiver serve` does (`receiver.cli.serve.run`: buffered JSON log lines at
the configured level, the GIL switch interval, uvicorn with httptools and uvloop) but without background services:
this measures the front door, not the dispatcher working through what it admits (`bench/contention.py` does that).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

# Run as `python bench/X.py`: the repository on the path, so that the `bench` package imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (
    REPO,
    Result,
    WrkLoad,
    add_postgres_option,
    ensure_wrk,
    temporary_database,
    wait_listening,
    warm_then_measure,
    wrk_script,
)
from receiver.cli.serve import run
from receiver.config import load_config
from receiver.server_thread import free_port

SECRET = "bench-secret-0123456789abcdef"

# Altinn's shape of a published correspondence, with a unique id per request.
PUSH_BODY = r"""string.format(
    '{"specversion":"1.0","id":"%s-%d","source":"https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",'
    .. '"type":"no.altinn.correspondence.correspondencepublished",'
    .. '"subject":"urn:altinn:organization:identifier-no:314249879",'
    .. '"time":"2025-03-14T09:26:53.5897932Z","resource":"urn:altinn:resource:nabovarsel",'
    .. '"resourceinstance":"019ce781-a5c0-7d03-8f51-3e7dda66dd74"}', prefix, counter)"""


def bare_app() -> Starlette:
    async def ok(request: object) -> Response:
        return Response(b"", status_code=200)

    return Starlette(routes=[Route("/events", ok, methods=["POST"])])


def serve_bare(port: int) -> None:
    """The baseline: the same uvicorn settings as `altinn-receiver serve`, an endpoint that only answers 200."""
    uvicorn.run(bare_app(), host="127.0.0.1", port=port, access_log=False, log_level="warning", proxy_headers=False)


def serve_receiver(config: Path) -> None:
    """(b): `altinn-receiver serve` without background services."""
    run(load_config(config), services=[])


def fsync_ms(folder: Path, count: int = 50) -> tuple[float, float]:
    """p50 and p90 of an fdatasync after a 4 KiB write in `folder`: what each commit with synchronous=FULL waits for."""
    path = folder / "fsync-probe"
    samples = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for i in range(count):
            os.pwrite(fd, os.urandom(4096), 4096 * (i % 8))
            started = time.perf_counter()
            os.fdatasync(fd)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    deciles = statistics.quantiles(samples, n=10)
    return statistics.median(samples), deciles[-1]


def measure_bare(wrk: str, script: Path, load: WrkLoad, name: str = "(a) bare Starlette 200") -> Result:
    """wrk on the baseline, `serve_bare` in a subprocess of its own."""
    port = free_port()
    bare = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port)], stdout=subprocess.DEVNULL)
    try:
        wait_listening(f"http://127.0.0.1:{port}/", bare)
        return warm_then_measure(wrk, f"http://127.0.0.1:{port}/events", script, load, name, bare.pid)
    finally:
        bare.terminate()
        bare.wait()


def measure(args: argparse.Namespace, wrk: str, work: Path, script: Path) -> list[Result]:
    baseline = measure_bare(wrk, script, WrkLoad.from_args(args))
    results = [baseline, webhook(args, wrk, work, script, f'path = "{work / "bench.db"}"', "(b) POST /events, SQLite")]
    if args.postgres:
        with temporary_database(args.postgres) as url:
            results.append(webhook(args, wrk, work, script, f'url = "{url}"', "(c) POST /events, PostgreSQL"))
    return results


def webhook(args: argparse.Namespace, wrk: str, work: Path, script: Path, store: str, name: str) -> Result:
    """The receiver as `serve` runs it on the store `store` (its `[store]` key) under wrk."""
    port = free_port()
    config = work / "receiver.toml"
    config.write_text(
        f'[receiver]\nport = {port}\nsecret = "{SECRET}"\n\n[store]\n{store}\n\n[log]\nlevel = "{args.log_level}"\n'
    )
    with (work / "serve.log").open("wb") as log:
        receiver = subprocess.Popen([sys.executable, __file__, "--serve-receiver", str(config)], stdout=log, cwd=REPO)
        try:
            wait_listening(f"http://127.0.0.1:{port}/healthz", receiver, work / "serve.log")
            url = f"http://127.0.0.1:{port}/events?code={SECRET}"
            durable = warm_then_measure(wrk, url, script, WrkLoad.from_args(args), name, receiver.pid)
            inbox = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            pending = re.search(r'altinn_receiver_events_received_total\{channel="push"\} ([\d.e+]+)', inbox)
            print(f"events stored by {name}: {float(pending.group(1)) if pending else 0:.0f}", file=sys.stderr)
        finally:
            receiver.terminate()
            receiver.wait()
    return durable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    WrkLoad.add_arguments(parser, threads_help="wrk threads (default 1: leave the cores to the server)")
    parser.add_argument("--log-level", default="info", help="the receiver's [log] level (default info, as deployed)")
    add_postgres_option(parser, "(c)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-receiver", type=Path, metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="altinn-receiver-bench-") as tmp:
        work = Path(tmp)
        script = work / "push.lua"
        script.write_text(wrk_script(PUSH_BODY))
        fsync_before = fsync_ms(work)
        results = measure(args, wrk, work, script)
        fsync_after = fsync_ms(work)
    bare, durable = results[:2]
    ratio = durable.requests_per_s / bare.requests_per_s
    ratio_postgresql = results[2].requests_per_s / bare.requests_per_s if len(results) > 2 else None
    load = os.getloadavg()[0]
    if args.json:
        fsync = {"p50_ms_before": fsync_before[0], "p90_ms_before": fsync_before[1]}
        fsync |= {"p50_ms_after": fsync_after[0], "p90_ms_after": fsync_after[1]}
        results_json = [r.__dict__ for r in results]
        ratios = {"ratio": round(ratio, 3), "ratio_postgresql": ratio_postgresql and round(ratio_postgresql, 3)}
        print(json.dumps({"results": results_json, **ratios, "fsync": fsync, "load": load}))
        return
    print(f"{'':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'loop µs/req':>12} {'process µs/req':>15}  errors")
    for r in results:
        print(
            f"{r.name:34} {r.requests_per_s:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.loop_cpu_us:12.0f}"
            f" {r.process_cpu_us:15.0f}  {r.errors}"
        )
    print(f"ratio b/a: {ratio:.2f} (target >= 0.5, and p99 <= 20 ms)")
    if ratio_postgresql is not None:
        print(f"ratio c/a: {ratio_postgresql:.2f}")
    print(
        f"fsync on this disk: p50 {fsync_before[0]:.2f} ms, p90 {fsync_before[1]:.2f} ms before;"
        f" p50 {fsync_after[0]:.2f} ms, p90 {fsync_after[1]:.2f} ms after"
    )
    print(
        f"cpus: {os.cpu_count()}, load average {load:.1f}, wrk: {args.connections} connections,"
        f" {args.threads} thread(s), {args.seconds}s"
    )


if __name__ == "__main__":
    main()
