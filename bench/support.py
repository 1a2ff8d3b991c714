"""What the benchmark scripts share: wrk and its results, CPU time from /proc, the simulator and the receiver in
subprocesses, and a backlog of events written straight into the inbox."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from altinn_sim.runner import SimulatorAdmin
from receiver.config import StoreConfig
from receiver.server_thread import free_port
from receiver.store.backends import open_backend
from receiver.store.db import connect_sync
from receiver.store.inbox import INSERT_EVENT, event_row
from receiver.store.migrate import migrate
from receiver.store.postgres.connection import translate
from receiver.store.records import NewEvent
from receiver.timeutil import now_iso

REPO = Path(__file__).resolve().parents[1]
SEND_BATCH = 500
# What a backlog is made of: an event the service-owner default pipelines fetch (fetch_correspondence) and `store`.
BACKLOG_EVENT_TYPE = "no.altinn.correspondence.correspondencereceiverread"
CORRESPONDENCE_SOURCE = "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence"
LISTEN_TIMEOUT = 30.0

# The start of a wrk script that pushes events with unique ids: each wrk thread numbers its requests, and the thread's
# own prefix (start time and thread number) keeps ids unique across threads and runs. `request()` is `wrk_script`'s.
_WRK_PRELUDE = r"""
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("prefix", string.format("%d-%d", os.time(), threads))
end
function request()
  counter = counter + 1
  local body = """


POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"


def add_postgres_option(parser: argparse.ArgumentParser, what: str = "", optional: bool = True) -> None:
    """`--postgres SERVER`, the PostgreSQL server a bench uses (for `what`), as a URL without a database; when
    `optional`, "" leaves its PostgreSQL runs out."""
    leave_out = f'; "" leaves {what or "it"} out' if optional else ""
    parser.add_argument(
        "--postgres",
        default=POSTGRES_SERVER,
        metavar="SERVER",
        help=f"the PostgreSQL server{' for ' + what if what else ''}, as a URL without a database "
        f"(default: %(default)s{leave_out})",
    )


def progress(quiet: bool) -> Callable[[str], None]:
    """Where a bench says how far it got: stderr, or nowhere when it prints JSON (`quiet`)."""
    return (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))


def wrk_script(body: str) -> str:
    """A wrk Lua script that POSTs JSON; `body` is a Lua expression that may use `prefix` and `counter`."""
    post = 'wrk.format("POST", nil, {["Content-Type"] = "application/json; charset=utf-8"}, body)'
    return f"{_WRK_PRELUDE}{body}\n  return {post}\nend\n"


@dataclass
class Result:
    """One measured wrk run, and the CPU time the server spent per request (its event loop's thread, all of it)."""

    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: str
    loop_cpu_us: float = 0.0
    process_cpu_us: float = 0.0


@dataclass(frozen=True)
class WrkLoad:
    """How wrk loads a server: connections, wrk threads, and whole seconds of warm-up and of the measured run."""

    connections: int
    threads: int
    seconds: int
    warmup: int

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, threads_help: str = "wrk threads (default 1)") -> None:
        parser.add_argument("--seconds", type=int, default=10, help="duration of each measured wrk run (default 10)")
        parser.add_argument("--warmup", type=int, default=2, help="wrk run before each measured one (default 2 s)")
        parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
        parser.add_argument("--threads", type=int, default=1, help=threads_help)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WrkLoad:
        return cls(connections=args.connections, threads=args.threads, seconds=args.seconds, warmup=args.warmup)


def ensure_wrk() -> str:
    """The path of `wrk`, installing the Debian package with apt-get (and sudo unless root) if it is missing."""
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


def _found(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text)
    if match is None:
        sys.exit(f"error: wrk's output has no {pattern!r}:\n{text}")
    return match


def run_wrk(wrk: str, url: str, script: Path, load: WrkLoad, name: str, seconds: int) -> Result:
    command = [wrk, "-t", str(load.threads), "-c", str(load.connections), "-d", f"{seconds}s", "--latency"]
    output = subprocess.run([*command, "-s", str(script), url], capture_output=True, text=True, check=True).stdout

    def percentile(label: str) -> float:
        value, unit = _found(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", output)
    rate = float(_found(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return Result(name, rate, percentile("50"), percentile("99"), errors.group(0) if errors else "")


def warm_then_measure(wrk: str, url: str, script: Path, load: WrkLoad, name: str, pid: int) -> Result:
    """A warm-up run, then the measured one, with the CPU time process `pid` (and its children) spent per request
    during it, and the webhook's event loop (`webhook_pid`)."""
    if load.warmup > 0:
        run_wrk(wrk, url, script, load, "warm-up", load.warmup)
    loop = webhook_pid(pid)
    loop_before, process_before = cpu_seconds(loop, thread=loop), cpu_seconds(pid)
    result = run_wrk(wrk, url, script, load, name, load.seconds)
    loop_after, process_after = cpu_seconds(loop, thread=loop), cpu_seconds(pid)
    requests = result.requests_per_s * load.seconds
    result.loop_cpu_us = (loop_after - loop_before) / requests * 1e6
    result.process_cpu_us = (process_after - process_before) / requests * 1e6
    return result


def children(pid: int) -> list[int]:
    """The processes `pid` has started that are still running, oldest first (/proc)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def webhook_pid(pid: int) -> int:
    """The process of `serve` (`pid`) whose main thread runs the webhook: its first child when it runs as two
    processes (`serve` forks the webhook first), else `pid` itself."""
    return next(iter(children(pid)), pid)


def cpu_seconds(pid: int, *, thread: int | None = None) -> float:
    """User + system CPU time that process `pid` and its children (`serve` runs as a parent with two), or only its
    thread `thread`, have used so far (/proc, clock ticks).

    The main thread's id is the process's: `thread=pid` is where the event loop of a uvicorn server runs."""
    if thread is None:
        return sum(_cpu_seconds(f"/proc/{process}/stat") for process in [pid, *children(pid)])
    return _cpu_seconds(f"/proc/{pid}/task/{thread}/stat")


def _cpu_seconds(path: str) -> float:
    try:
        fields = Path(path).read_text().rpartition(")")[2].split()
    except FileNotFoundError:  # a child that ended between listing and reading
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """The resident memory of process `pid` and its children, in MB."""
    return sum(_rss_mb(process) for process in [pid, *children(pid)])


def _rss_mb(pid: int) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_listening(url: str, process: subprocess.Popen[bytes], log: Path | None = None) -> None:
    """Wait until a GET of `url` gets any answer; exit with an error if `process` ends or nothing listens in time."""
    see = f"; see {log}" if log else ""
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"error: the server exited with {process.returncode} before listening{see}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    sys.exit(f"error: nothing listens on {url} after {LISTEN_TIMEOUT:g}s{see}")


def wait_dispatching(store: Path | str, process: subprocess.Popen[bytes], log: Path | None = None) -> None:
    """Wait until the receiver `process` has finished an event of the store's backlog (`count_done`): `serve` answers
    /healthz before its dispatcher has started (services start in the background; the worker is a process of its
    own), which took more than a one-second measurement under load. Exit with an error if it does not in time."""
    see = f"; see {log}" if log else ""
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while not count_done(store):
        if process.poll() is not None:
            sys.exit(f"error: the server exited with {process.returncode} before dispatching{see}")
        if time.monotonic() > deadline:
            sys.exit(f"error: no event of the backlog done after {LISTEN_TIMEOUT:g}s{see}")
        time.sleep(0.05)


class SimulatorProcess(SimulatorAdmin):
    """`altinn-receiver simulator` in a subprocess (in this one it would share a GIL with the benchmark's sampling,
    and its CPU time would count against the receiver), with the admin API's calls; a context manager."""

    def __init__(self, folder: Path) -> None:
        port = free_port()
        super().__init__(f"http://127.0.0.1:{port}")
        settings = folder / "sim.toml"
        settings.write_text("time_scale = 1000\nseed_correspondences = 0\n", encoding="utf-8")
        self._log_path = folder / "simulator.log"
        self._log = self._log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "receiver", "simulator", "--port", str(port), "--config", str(settings)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip

    def __enter__(self) -> SimulatorProcess:
        try:
            wait_listening(self.url + "/_sim/state", self._process, self._log_path)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._process.terminate()
        self._process.wait(30)
        self._log.close()


@contextmanager
def serving(config: Path, folder: Path, *flags: str, log: str = "serve.log") -> Iterator[subprocess.Popen[bytes]]:
    """`altinn-receiver serve --config config [flags]` in a subprocess, its output in `folder`/`log`; stopped on
    exit. Without `--single-process` it is a parent with two children, which `cpu_seconds` and `rss_mb` include."""
    with (folder / log).open("wb") as output:
        command = [sys.executable, "-m", "receiver", "serve", "--config", str(config), *flags]
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(60)


def send_correspondences(
    sim: SimulatorAdmin, resource: str, recipient: str, count: int, *, attachments: int = 0
) -> list[str]:
    """Send `count` correspondences (with `attachments` files each) without pushing their events; their ids."""
    ids: list[str] = []
    spec = {"resource_id": resource, "recipient": recipient, "attachments": attachments}
    while len(ids) < count:
        batch = [spec] * min(SEND_BATCH, count - len(ids))
        response = sim.admin.post("/correspondences", json=batch, params={"push": "false"}, timeout=120)
        response.raise_for_status()
        ids += response.json()["ids"]
    return ids


def write_backlog(store: Path | str, resource: str, correspondences: list[str], per: int, rng: random.Random) -> int:
    """`per` events of `BACKLOG_EVENT_TYPE` per correspondence of `resource`, times (a second or more apart, within
    a minute when `per` allows) shuffled against arrival order, written in chunks with the inbox's own INSERT into
    the SQLite file or the PostgreSQL database (a URL) `store`, made or migrated first; how many."""
    if isinstance(store, str):
        open_backend(StoreConfig(url=store)).create_if_missing()
    else:
        migrate(store)
    received = now_iso()
    written = 0
    with _writing(store) as write:
        for start in range(0, len(correspondences), 1000):
            rows = []
            for cid in correspondences[start : start + 1000]:
                seconds = rng.sample(range(max(60, per)), per)
                for s in seconds:
                    event_id = str(uuid.uuid4())
                    clock = f"{10 + s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
                    stamp = f"2026-01-05T{clock}.{rng.randrange(10**7):07d}Z"
                    raw = {"specversion": "1.0", "id": event_id, "type": BACKLOG_EVENT_TYPE, "time": stamp,
                           "source": CORRESPONDENCE_SOURCE, "resource": resource, "resourceinstance": cid}  # fmt: skip
                    event = NewEvent(event_id, BACKLOG_EVENT_TYPE, CORRESPONDENCE_SOURCE, "", resource, cid, stamp,
                                     json.dumps(raw))  # fmt: skip
                    rows.append(event_row(event, "catchup", received))
            rng.shuffle(rows)
            write(rows)
            written += len(rows)
    return written


@contextmanager
def _writing(store: Path | str) -> Iterator[Callable[[list[dict[str, str]]], None]]:
    """A function that inserts rows of `INSERT_EVENT` into `store` in one transaction."""
    if isinstance(store, str):
        import psycopg  # the postgres extra: only a run on PostgreSQL needs it

        with psycopg.connect(store) as conn:

            def into_postgres(rows: list[dict[str, str]]) -> None:
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(translate(INSERT_EVENT), rows)

            yield into_postgres
        return
    with closing(connect_sync(store)) as sqlite:

        def into_sqlite(rows: list[dict[str, str]]) -> None:
            sqlite.execute("BEGIN")
            sqlite.executemany(INSERT_EVENT, rows)
            sqlite.execute("COMMIT")

        yield into_sqlite


Sample = tuple[float, int, float, float]
"""While a backlog drains: seconds since the receiver was started, events done, its RSS in MB, its CPU seconds."""


def drain(
    process: subprocess.Popen[bytes] | Sequence[subprocess.Popen[bytes]],
    store: Path | str,
    total: int,
    interval: float,
    say: Callable[[str], None],
) -> list[Sample]:
    """Sample the receiver `process` (or processes, summed) every `interval` seconds until `total` events in `store`
    are done (or dead), saying how far it got about every 10 s; exits if a receiver does."""
    processes = [process] if isinstance(process, subprocess.Popen) else list(process)
    progress_every = max(1, round(10 / interval))
    started = time.monotonic()
    samples: list[Sample] = []
    while True:
        for each in processes:
            if each.poll() is not None:
                raise SystemExit(f"serve exited with {each.returncode}; see its log beside the store")
        done = count_done(store)
        rss = sum(rss_mb(each.pid) for each in processes)
        samples.append((time.monotonic() - started, done, rss, sum(cpu_seconds(each.pid) for each in processes)))
        if done >= total:
            return samples
        if len(samples) % progress_every == 0:
            say(f"  {done}/{total} done, RSS {samples[-1][2]:.1f} MB")
        time.sleep(interval)


def reached(samples: list[Sample], fraction: float, total: int) -> Sample:
    """The first sample with at least `fraction` of `total` done."""
    return next(sample for sample in samples if sample[1] >= fraction * total)


@dataclass(frozen=True)
class Steady:
    """A drain from 10 % to 90 % of its events done (the receiver's start and the last stragglers left out): events
    per second, and the receiver's CPU time per event and as a share of one core."""

    per_s: float
    cpu_ms_per_event: float
    cpu_of_a_core: float

    @classmethod
    def of(cls, samples: list[Sample], total: int) -> Steady:
        (t10, d10, _, cpu10), (t90, d90, _, cpu90) = reached(samples, 0.10, total), reached(samples, 0.90, total)
        if t90 <= t10 or d90 <= d10:
            return cls(float("nan"), float("nan"), float("nan"))
        return cls((d90 - d10) / (t90 - t10), (cpu90 - cpu10) / (d90 - d10) * 1000, (cpu90 - cpu10) / (t90 - t10))


def count_done(store: Path | str) -> int:
    """Events the dispatcher has finished with (done or dead), in the SQLite file or PostgreSQL database `store`."""
    sql = "SELECT COUNT(*) FROM inbox WHERE status IN ('done', 'dead')"
    if isinstance(store, str):
        import psycopg

        with psycopg.connect(store) as conn:
            row = conn.execute(sql).fetchone()
            return int(row[0]) if row else 0
    with closing(sqlite3.connect(store)) as sqlite:
        return int(sqlite.execute(sql).fetchone()[0])


@contextmanager
def temporary_database(server: str) -> Iterator[str]:
    """A PostgreSQL database of its own on `server` (a URL without a database) for one run; its URL. Dropped after."""
    import psycopg  # the postgres extra: only a run on PostgreSQL needs it

    name = f"altinn_receiver_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
