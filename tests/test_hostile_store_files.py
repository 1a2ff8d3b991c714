"""The store's files: the store, its WAL and its backups are created with `[store] file_mode` (0600 by default),
whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from tests.ingest_support import ServeProcess, new_event, push, run_cli, webhook
from tests.support import write_config

STORE_FILES = ("receiver.db", "receiver.db-wal", "receiver.db-shm")


def umask(mask: int) -> Callable[[], None]:
    """What the serve process runs before it starts: set its umask to `mask`."""

    def set_umask() -> None:
        os.umask(mask)

    return set_umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_its_wal_and_shm_are_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, preexec_fn=umask(0))
    with serve, httpx.Client(timeout=30) as client:
        assert push(client, webhook(serve.url), new_event()).status_code == 200
        modes = {name: mode(tmp_path / name) for name in STORE_FILES}
    assert modes == dict.fromkeys(STORE_FILES, 0o600)


def test_file_mode_0640_applies_to_the_store_its_wal_shm_and_backups(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, preexec_fn=umask(0o077))
    serve.config.write_text(serve.config.read_text() + 'file_mode = "0640"\n')
    with serve, httpx.Client(timeout=30) as client:
        assert push(client, webhook(serve.url), new_event()).status_code == 200
        modes = {name: mode(tmp_path / name) for name in STORE_FILES}
        previous = os.umask(0o077)
        try:
            args = ["store", "backup", str(tmp_path / "copy.db"), "--config", str(serve.config)]
            result = CliRunner().invoke(main, args, catch_exceptions=False)
        finally:
            os.umask(previous)
    assert modes == dict.fromkeys(STORE_FILES, 0o640)
    assert result.exit_code == 0, result.stderr
    assert mode(tmp_path / "copy.db") == 0o640


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"0999"', 'must be an octal file mode such as "0600" or "0640", got \'0999\''),
        ('"rw-r-----"', 'must be an octal file mode such as "0600" or "0640", got \'rw-r-----\''),
        ('"0440"', "must let the owner read and write the store (0600 at least), got '0440'"),
        ("600", "must be a string"),
    ],
)
def test_a_file_mode_that_is_not_one_is_a_config_error_naming_the_key(tmp_path: Path, value: str, problem: str) -> None:
    config = write_config(tmp_path / "r.toml", f"[receiver]\nallow_no_secret = true\n[store]\nfile_mode = {value}\n")
    result = run_cli("config", "validate", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"config error: store.file_mode: {problem}"), result.stderr
