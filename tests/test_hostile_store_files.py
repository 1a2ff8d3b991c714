"""The store's files while serving: deleted or moved away underneath the receiver, and their file mode.

`rm receiver.db*` (or `mv` elsewhere) while `serve` ran used to get 200 for every later push, `/readyz` said
"writable", and after a restart those events were gone: they had been committed into a file nobody could open
again. The writer now checks after each commit that the path still names the files it has open, and answers 503
(and `/readyz` 503) when not. The store, its WAL and its backups are created with `[store] file_mode`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from tests.ingest_support import ServeProcess, inbox_rows, new_event, push, webhook
from tests.support import write_config

STORE_FILES = ("receiver.db", "receiver.db-wal", "receiver.db-shm")


def umask(mask: int) -> Callable[[], None]:
    """What the serve process runs before it starts: set its umask to `mask`."""

    def set_umask() -> None:
        os.umask(mask)

    return set_umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def store_errors(serve: ServeProcess) -> list[dict[str, object]]:
    return [line for line in serve.log_lines() if line["level"] == "error"]


def test_a_store_deleted_while_serving_gets_503_and_readyz_503_not_200(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    with serve, httpx.Client(timeout=30) as client:
        url = webhook(serve.url)
        assert push(client, url, new_event()).status_code == 200
        assert client.get(f"{serve.url}/readyz").status_code == 200
        for name in STORE_FILES:  # rm receiver.db*
            (tmp_path / name).unlink()
        pushed = [push(client, url, new_event()) for _ in range(20)]
        ready = client.get(f"{serve.url}/readyz")
    assert [response.status_code for response in pushed] == [503] * 20
    assert all(int(response.headers["retry-after"]) > 0 for response in pushed)
    assert "was deleted or replaced" in pushed[0].json()["detail"]
    assert ready.status_code == 503
    assert ready.json()["store"].startswith(f"store {serve.store} was deleted or replaced while serving")
    [error] = store_errors(serve)  # once, not once per push
    assert error["msg"] == "the store can no longer be written"
    assert not (tmp_path / "receiver.db").exists(), "nothing made a new store behind the operator's back"


def test_a_store_moved_away_while_serving_acknowledges_nothing_into_it_and_loses_nothing(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    aside = tmp_path / "aside"
    aside.mkdir()
    acknowledged, refused = [], []
    with serve, httpx.Client(timeout=30) as client:
        url = webhook(serve.url)
        for _ in range(10):
            event = new_event()
            assert push(client, url, event).status_code == 200
            acknowledged.append(event)
        for name in STORE_FILES:  # mv receiver.db* aside/
            (tmp_path / name).rename(aside / name)
        for _ in range(10):
            event = new_event()
            response = push(client, url, event)
            assert response.status_code == 503, response.text
            refused.append(event)
        assert client.get(f"{serve.url}/readyz").status_code == 503
    assert len(store_errors(serve)) == 2, "said once by each of serve's processes (webhook and worker), not per push"

    # The operator puts the files back and starts again: every acknowledged event is there, and Altinn's retries of
    # the refused ones land.
    for path in aside.iterdir():
        path.rename(tmp_path / path.name)
    stored = {row["id"] for row in inbox_rows(serve.store)}
    assert {event["id"] for event in acknowledged} <= stored
    with serve, httpx.Client(timeout=30) as client:
        assert [push(client, webhook(serve.url), event).status_code for event in refused] == [200] * 10
    assert {e["id"] for e in acknowledged + refused} <= {row["id"] for row in inbox_rows(serve.store)}


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
    result = CliRunner().invoke(main, ["config", "validate", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"config error: store.file_mode: {problem}"), result.stderr
