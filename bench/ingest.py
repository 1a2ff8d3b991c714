"""Benchmark: a bare Starlette endpoint vs `POST /events` with the durable inbox, both under wrk (32 connections).

Run with `make bench` (or `.venv/bin/python bench/ingest.py --help`). Both servers run as subprocesses with the same
uvicorn settings on this machine, one after the other; the receiver uses `synchronous=FULL` and unique event ids.
Prints requests/s and p50/p99 latency of each and the ratio b/a. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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
    .. '"type":"no.altinn.correspondence.correspondencepublished","subject":"urn:altinn:organization:identifier-no:314249879",'
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


def bare_app() -> Starlette:
    async def ok(request: object) -> Response:
        return Response(b"", status_code=200)

    return Starlette(routes=[Route("/events", ok, methods=["POST"])])


def serve_bare(port: int) -> None:
    """The baseline: the same uvicorn settings as `altinn-receiver serve`, an endpoint that only answers 200."""
    uvicorn.run(bare_app(), host="127.0.0.1", port=port, access_log=False, log_level="warning", proxy_headers=False)


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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def run_wrk(wrk: str, url: str, script: Path, *, connections: int, threads: int, seconds: int, name: str) -> Result:
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", output)
    return Result(name, rate, percentile("50"), percentile("99"), errors.group(0) if errors else "")


def measure(args: argparse.Namespace, wrk: str, work: Path, script: Path) -> list[Result]:
    results = []
    python = sys.executable
    port = free_port()
    bare = subprocess.Popen([python, __file__, "--serve-bare", str(port)], stdout=subprocess.DEVNULL)
    try:
        wait_listening(f"http://127.0.0.1:{port}/", bare)
        run_wrk(wrk, f"http://127.0.0.1:{port}/events", script, connections=args.connections, threads=args.threads,
                seconds=2, name="warm-up")  # fmt: skip
        results.append(
            run_wrk(wrk, f"http://127.0.0.1:{port}/events", script, connections=args.connections,
                    threads=args.threads, seconds=args.seconds, name="(a) bare Starlette 200")  # fmt: skip
        )
    finally:
        bare.terminate()
        bare.wait()

    port = free_port()
    store = work / "bench.db"
    config = work / "receiver.toml"
    config.write_text(
        f'[receiver]\nport = {port}\nsecret = "{SECRET}"\n\n[store]\npath = "{store}"\n\n[log]\nlevel = "{args.log_level}"\n'
    )
    log = (work / "serve.log").open("wb")
    receiver = subprocess.Popen([python, "-m", "receiver", "serve", "--config", str(config)], stdout=log, cwd=REPO)
    try:
        wait_listening(f"http://127.0.0.1:{port}/healthz", receiver)
        url = f"http://127.0.0.1:{port}/events?code={SECRET}"
        run_wrk(wrk, url, script, connections=args.connections, threads=args.threads, seconds=2, name="warm-up")
        results.append(
            run_wrk(wrk, url, script, connections=args.connections, threads=args.threads, seconds=args.seconds,
                    name="(b) POST /events, durable inbox")  # fmt: skip
        )
        inbox = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        pending = re.search(r'altinn_receiver_inbox_events\{status="pending"\} ([\d.e+]+)', inbox)
        print(f"inbox rows after the run: {float(pending.group(1)) if pending else 'unknown':.0f}", file=sys.stderr)
    finally:
        receiver.terminate()
        receiver.wait()
        log.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="duration of each measured run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: leave the cores to the server)")
    parser.add_argument("--log-level", default="info", help="the receiver's [log] level (default info, as deployed)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="altinn-receiver-bench-") as tmp:
        work = Path(tmp)
        script = work / "push.lua"
        script.write_text(WRK_SCRIPT)
        results = measure(args, wrk, work, script)
    bare, durable = results
    ratio = durable.requests_per_s / bare.requests_per_s
    if args.json:
        print(json.dumps({"results": [r.__dict__ for r in results], "ratio": round(ratio, 3)}))
        return
    print(f"{'':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors")
    for r in results:
        print(f"{r.name:34} {r.requests_per_s:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f}  {r.errors}")
    print(f"ratio b/a: {ratio:.2f} (target >= 0.5, and p99 <= 20 ms)")
    print(f"cpus: {os.cpu_count()}, wrk: {args.connections} connections, {args.threads} thread(s), {args.seconds}s")


if __name__ == "__main__":
    main()
