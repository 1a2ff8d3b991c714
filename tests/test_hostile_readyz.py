"""`/readyz` says what the webhook would say: with the disk full it answered 200 while every push got 503.

When no commit has written recently, `/readyz` makes a probe write of an event's size and answers from it. The full
disk is a real one: a 2 MB tmpfs in a mount namespace of the receiver's own (`unshare`), filled through
/proc/PID/root with a ballast file while `serve` runs, then freed.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.ingest_support import ServeProcess, new_event, push, webhook

DISK = "2m"


def namespace_with_a_small_disk(mount_point: Path) -> list[str]:
    """A command prefix: run what follows in a private mount namespace with a tmpfs of DISK on `mount_point`."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("needs unshare (Debian package util-linux) for a small file system of the test's own")
    probe = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.fail(
            f"cannot make a private mount namespace here (unshare --user --mount): {probe.stderr.decode().strip()}"
        )
    script = f'mount -t tmpfs -o size={DISK} tmpfs "$0" && exec "$@"'
    return [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script, str(mount_point)]


def fill(folder: Path) -> Path:
    """Write a ballast file into `folder` until its file system is full."""
    ballast = folder / "ballast"
    descriptor = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 512):
            try:
                while os.write(descriptor, chunk):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(descriptor)
    return ballast


def test_readyz_answers_503_on_a_full_disk_before_any_push_fails_and_200_once_space_is_back(tmp_path: Path) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    serve = ServeProcess(tmp_path, wrapper=namespace_with_a_small_disk(disk), store=disk / "receiver.db")
    with serve, httpx.Client(timeout=30) as client:
        assert serve.process is not None
        inside = Path(f"/proc/{serve.process.pid}/root") / disk.relative_to("/")
        assert (inside / "receiver.db").is_file() and not (disk / "receiver.db").exists()
        ballast = fill(inside)
        try:
            ready = client.get(f"{serve.url}/readyz")
            refused = push(client, webhook(serve.url), new_event())
            still = client.get(f"{serve.url}/readyz")
        finally:
            ballast.unlink()
        back = client.get(f"{serve.url}/readyz")
        stored = push(client, webhook(serve.url), new_event())
    assert ready.status_code == 503, "ready with no room for a push"
    assert ready.json()["store"] == "disk or file size limit is full"
    assert refused.status_code == 503 and still.status_code == 503
    assert back.status_code == 200 and back.json()["store"] == "writable"
    assert stored.status_code == 200
