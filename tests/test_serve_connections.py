"""Slow and idle connections against a real `altinn-receiver serve`, over raw loopback sockets: a request's head and
body must arrive within `[receiver] read_timeout`, idle keep-alive connections close after `keepalive_timeout`, and
beyond `max_connections` a new connection is answered 503 with Retry-After at once."""

from __future__ import annotations

import resource
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.ingest_support import SECRET, ServeProcess, compact, count, new_event, push, webhook
from tests.support import wait_until


@contextmanager
def connections(port: int, n: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        yield [stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10)) for _ in range(n)]


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received, time.monotonic() - started


def head(length: int, path: str = f"/events?code={SECRET}") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    ).encode()


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not in /metrics")


def test_a_request_whose_head_or_body_does_not_arrive_within_read_timeout_is_closed(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, read_timeout="1s")
    with serve, connections(serve.port, 3) as (silent, slowloris, lying):
        event = compact(new_event())
        lying.sendall(head(len(event)) + event[:10])  # a Content-Length it never makes good
        started = time.monotonic()
        slowloris.settimeout(10)
        closed_after = None
        for byte in head(len(event)):  # one byte every 50 ms: never idle, never done within a second
            try:
                slowloris.send(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - started
                break
            time.sleep(0.05)
        answer, _ = read_until_closed(slowloris, timeout=5)
        assert closed_after is not None or answer, "a head sent a byte at a time was not cut off"
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 5

        answer, waited = read_until_closed(silent, timeout=5)
        assert answer.startswith(b"HTTP/1.1 408 "), "a connection that sends nothing is closed, saying why"
        assert waited < 3
        answer, waited = read_until_closed(lying, timeout=5)
        assert answer == b"", "the app had the request: the connection just closes, nothing is answered"
        assert waited < 3

        assert metric(serve.url, "altinn_receiver_connections_timed_out_total") == 3
        with httpx.Client() as client:  # a request that arrives in time still works
            assert push(client, webhook(serve.url), new_event()).status_code == 200
    assert count(serve.store) == 1, "the event whose body never came was not stored"


def test_idle_keep_alive_connections_close_after_keepalive_timeout(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, keepalive_timeout="1s", read_timeout="20s")
    with serve, connections(serve.port, 1) as (sock,):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        answer, waited = read_until_closed(sock, timeout=10)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert 0.8 < waited < 5


def test_beyond_max_connections_new_ones_get_503_at_once_and_pushes_pass_once_idle_ones_time_out(
    tmp_path: Path,
) -> None:
    serve = ServeProcess(tmp_path, max_connections=8, read_timeout="3s")
    with serve, httpx.Client(timeout=10) as client:
        with connections(serve.port, 8) as idle:
            started = time.monotonic()
            refused = push(client, webhook(serve.url), new_event())
            assert time.monotonic() - started < 1, "refused at once, not queued"
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) > 0
            assert "max_connections" in refused.json()["detail"]
            for _ in range(3):
                with connections(serve.port, 1) as (extra,):
                    answer, _ = read_until_closed(extra, timeout=5)
                    assert answer.startswith(b"HTTP/1.1 503 ")
            for sock in idle:  # read_timeout closes the idle ones
                read_until_closed(sock, timeout=10)
            started = time.monotonic()
            assert push(client, webhook(serve.url), new_event()).status_code == 200
            assert time.monotonic() - started < 1
        assert metric(serve.url, "altinn_receiver_connections_refused_total") == 4
    warnings = [line for line in serve.log_lines() if line["msg"].startswith("connection limit reached")]
    assert len(warnings) == 1, "at most one warning a minute"
    assert warnings[0]["max_connections"] == 8


def test_under_a_low_open_file_limit_idle_connections_cannot_block_pushes(tmp_path: Path) -> None:
    """The attack of issue 17: 78 idle connections under a 100-file limit made every push wait 20-30 s."""
    serve = ServeProcess(
        tmp_path, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100)), read_timeout="20s"
    )
    with serve, httpx.Client(timeout=10) as client:
        warning = wait_until(
            lambda: [line for line in serve.log_lines() if "open-file limit" in line["msg"]],
            message="a warning that max_connections does not fit the file limit",
        )[0]
        assert "at most 50 connections" in warning["msg"]
        with connections(serve.port, 78):
            started = time.monotonic()
            answer = push(client, webhook(serve.url), new_event())
            assert answer.status_code == 503, "answered at once, for Altinn to retry, instead of waiting"
            assert time.monotonic() - started < 2
        wait_until(  # as Altinn would, until the receiver has seen the idle ones close
            lambda: push(client, webhook(serve.url), new_event()).status_code == 200,
            timeout=5,
            message="a push to get through once the idle connections are gone",
        )


def test_sigterm_with_slow_clients_exits_within_shutdown_timeout_without_error_lines(tmp_path: Path) -> None:
    shutdown_timeout = 3.0
    serve = ServeProcess(tmp_path, shutdown_timeout=f"{shutdown_timeout:g}s", read_timeout="60s")
    with serve, connections(serve.port, 12) as socks:
        event = compact(new_event())
        for sock in socks[:4]:  # pushes in flight whose body never comes
            sock.sendall(head(len(event)) + event[:5])
        for sock in socks[4:8]:  # heads still arriving
            sock.sendall(head(len(event))[:20])
        wait_until(lambda: metric(serve.url, "altinn_receiver_ingest_inflight") == 4, message="4 pushes in flight")
        serve.signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = serve.wait(timeout=shutdown_timeout + 20)
        took = time.monotonic() - signalled
    assert code == 0
    assert took < shutdown_timeout + 1.5, f"exit took {took:.1f}s with shutdown_timeout {shutdown_timeout:g}s"
    output = serve.log_path.read_text() + serve.err_path.read_text()
    assert "CancelledError" not in output and "Traceback" not in output
    assert not [line for line in serve.log_lines() if line["level"] == "error"]
