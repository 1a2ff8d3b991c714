"""Benchmark: a bare Starlette endpoint vs `POST /events` with the durable inbox, both under wrk (32 connections).

Run with `make bench` (or `.venv/bin/python bench/ingest.py --help`). Both servers run as subprocesses with the same
uvicorn settings on this machine, one after the other; the receiver uses `synchronous=FULL` and unique event ids.
Prints requests/s and p50/p99 latency of each, the ratio b/a, the CPU time each server spent per request (its event
loop's thread and the whole process) and how long an fsync takes on this disk. Not a test: numbers depend on the
machine.

The receiver runs exactly as `altinn-receiver serve` does (`receiver.cli.serve.run`: buffered JSON log lines at
the configured level, the GIL switch interval, uvicorn with httptools and uvloop) but without background services:
this measures the front door, not the dispatcher working through what it admits (`bench/contention.py` does that).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from receiver.cli.serve import run
from receiver.config import load_config
from receiver.server_thread import free_port

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789abcdef"

# Each wrk thread numbers its requests; the thread's own prefix keeps ids unique across threads and runs.
WRK_SCRIPT = r"""
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("prefix", string.format("%d-%d", os.time(), threads))
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"specversion":"1.0","id":"%s-%d","source":"https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",'
    .. '"type":"no.altinn.correspondence.correspondencepublished",'
    .. '"subject":"urn:altinn:organization:identifier-no:314249879",'
    .. '"time":"2025-03-14T09:26:53.5897932Z","resource":"urn:altinn:resource:nabovarsel",'
    .. '"resourceinstance":"019ce781-a5c0-7d03-8f51-3e7dda66dd74"}', prefix, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json; charset=utf-8"}, body)
end
"""


@dataclass
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: str
    loop_cpu_us: float = 0.0
    process_cpu_us: float = 0.0


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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system) of the process's main thread, where its event loop runs, and of the whole process."""
    tick = os.sysconf("SC_CLK_TCK")

    def read(path: str) -> float:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    return read(f"/proc/{pid}/task/{pid}/stat"), read(f"/proc/{pid}/stat")


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


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is not installed: installing the Debian package wrk (apt-get install -y wrk) ...", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("error: wrk is still not on PATH after installing it")
    return found


def wait_listening(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"error: the server exited with {process.returncode} before listening")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    sys.exit(f"error: nothing listens on {url} after 20s")


def found(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text)
    if match is None:
        sys.exit(f"error: wrk's output has no {pattern!r}:\n{text}")
    return match


def run_wrk(wrk: str, url: str, script: Path, args: argparse.Namespace, name: str, seconds: int) -> Result:
    command = [wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s", "--latency"]
    output = subprocess.run([*command, "-s", str(script), url], capture_output=True, text=True, check=True).stdout

    def percentile(label: str) -> float:
        value, unit = found(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", output)
    rate = float(found(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return Result(name, rate, percentile("50"), percentile("99"), errors.group(0) if errors else "")


def warm_then_measure(wrk: str, url: str, script: Path, args: argparse.Namespace, name: str, pid: int) -> Result:
    run_wrk(wrk, url, script, args, "warm-up", 2)
    loop_before, process_before = cpu_seconds(pid)
    result = run_wrk(wrk, url, script, args, name, args.seconds)
    loop_after, process_after = cpu_seconds(pid)
    requests = result.requests_per_s * args.seconds
    result.loop_cpu_us = (loop_after - loop_before) / requests * 1e6
    result.process_cpu_us = (process_after - process_before) / requests * 1e6
    return result


def measure(args: argparse.Namespace, wrk: str, work: Path, script: Path) -> list[Result]:
    python = sys.executable
    port = free_port()
    bare = subprocess.Popen([python, __file__, "--serve-bare", str(port)], stdout=subprocess.DEVNULL)
    try:
        wait_listening(f"http://127.0.0.1:{port}/", bare)
        url = f"http://127.0.0.1:{port}/events"
        baseline = warm_then_measure(wrk, url, script, args, "(a) bare Starlette 200", bare.pid)
    finally:
        bare.terminate()
        bare.wait()

    port = free_port()
    config = work / "receiver.toml"
    config.write_text(
        f'[receiver]\nport = {port}\nsecret = "{SECRET}"\n\n[store]\npath = "{work / "bench.db"}"\n\n'
        f'[log]\nlevel = "{args.log_level}"\n'
    )
    with (work / "serve.log").open("wb") as log:
        receiver = subprocess.Popen([python, __file__, "--serve-receiver", str(config)], stdout=log, cwd=REPO)
        try:
            wait_listening(f"http://127.0.0.1:{port}/healthz", receiver)
            url = f"http://127.0.0.1:{port}/events?code={SECRET}"
            durable = warm_then_measure(wrk, url, script, args, "(b) POST /events, durable inbox", receiver.pid)
            inbox = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            pending = re.search(r'altinn_receiver_events_received_total\{channel="push"\} ([\d.e+]+)', inbox)
            print(f"events stored by the receiver: {float(pending.group(1)) if pending else 0:.0f}", file=sys.stderr)
        finally:
            receiver.terminate()
            receiver.wait()
    return [baseline, durable]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="duration of each measured run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: leave the cores to the server)")
    parser.add_argument("--log-level", default="info", help="the receiver's [log] level (default info, as deployed)")
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
        script.write_text(WRK_SCRIPT)
        fsync_before = fsync_ms(work)
        results = measure(args, wrk, work, script)
        fsync_after = fsync_ms(work)
    bare, durable = results
    ratio = durable.requests_per_s / bare.requests_per_s
    load = os.getloadavg()[0]
    if args.json:
        fsync = {"p50_ms_before": fsync_before[0], "p90_ms_before": fsync_before[1]}
        fsync |= {"p50_ms_after": fsync_after[0], "p90_ms_after": fsync_after[1]}
        results_json = [r.__dict__ for r in results]
        print(json.dumps({"results": results_json, "ratio": round(ratio, 3), "fsync": fsync, "load": load}))
        return
    print(f"{'':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'loop µs/req':>12} {'process µs/req':>15}  errors")
    for r in results:
        print(
            f"{r.name:34} {r.requests_per_s:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.loop_cpu_us:12.0f}"
            f" {r.process_cpu_us:15.0f}  {r.errors}"
        )
    print(f"ratio b/a: {ratio:.2f} (target >= 0.5, and p99 <= 20 ms)")
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
