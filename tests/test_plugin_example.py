"""The example plugin package (examples/altinn-receiver-example-plugin), installed into a folder of its own and put
on PYTHONPATH: its own tests pass through `handlers.testing`; in a real `altinn-receiver serve` its entry point
`audit_file` is found and runs; without it the same config stops with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from receiver.config import CONFIG_ENV
from tests.dispatch_support import wait_settled
from tests.ingest_support import ServeProcess, new_event, push, run_cli, webhook
from tests.pipeline_support import CORRESPONDENCE_EVENTS, pipelines_toml
from tests.support import REPO, wait_until

EXAMPLE = REPO / "examples" / "altinn-receiver-example-plugin"
PIPELINE = pipelines_toml(
    ([CORRESPONDENCE_EVENTS], ["store", "audit_file"]),
    dispatch={"poll_interval": "50ms"},
    handlers={"audit_file": {"path": "audit.jsonl"}},
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed with pip into a target folder: the shared venv stays as it was."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(EXAMPLE)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return target


def test_the_example_plugins_own_tests_pass_through_handlers_testing(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env={**os.environ, "PYTHONPATH": str(installed)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "skipped" not in result.stdout


def test_the_installed_example_plugin_runs_through_its_entry_point(
    tmp_path: Path, installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(installed))
    serve = ServeProcess(tmp_path)
    serve.config.write_text(serve.config.read_text() + PIPELINE)
    event = new_event()
    with serve, httpx.Client() as client:
        assert push(client, webhook(serve.url), event).status_code == 200
        assert wait_settled(serve.store, 1) == {event["id"]: "done"}
    audit = tmp_path / "audit.jsonl"
    lines = wait_until(lambda: audit.exists() and audit.read_text().splitlines(), message="the audit line")
    assert [json.loads(line) for line in lines] == [
        {"event_id": event["id"], "type": event["type"], "resourceinstance": event["resourceinstance"]}
    ]


def test_without_the_plugin_installed_the_same_config_exits_2_naming_the_handler(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    serve.config.write_text(serve.config.read_text() + PIPELINE)
    result = run_cli("serve", "--config", str(serve.config))
    assert result.returncode == 2
    assert "pipelines[0].handlers[1]: unknown handler 'audit_file'" in result.stderr


def test_handlers_list_shows_the_plugin_with_its_distribution_and_options(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(installed))
    result = run_cli("handlers", "list", "--json", "--config", str(EXAMPLE / "no-such-config.toml"))
    assert result.returncode == 2, "a --config that names no file is an error, as for every command"
    monkeypatch.chdir(installed)  # no ./receiver.toml and no $ALTINN_RECEIVER_CONFIG: the installed handlers alone
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    result = run_cli("handlers", "list", "--json")
    assert result.returncode == 0, result.stderr
    [audit] = [row for row in map(json.loads, result.stdout.splitlines()) if row["name"] == "audit_file"]
    assert audit == {
        "name": "audit_file",
        "kind": "entry point",
        "source": "altinn-receiver-example-plugin 0.1.0",
        "target": "altinn_receiver_example:AuditFile",
        "uses_altinn": False,
        "options": [
            {"name": "path", "type": "path", "default": None, "required": True},
            {"name": "include_title", "type": "bool", "default": True, "required": False},
        ],
        "error": "",
        "distribution": {"name": "altinn-receiver-example-plugin", "version": "0.1.0"},
        "extra": "",
    }
    table = run_cli("handlers", "list").stdout
    assert (
        "altinn-receiver-example-plugin 0.1.0" in table and "path: path (required); include_title: bool = true" in table
    )
