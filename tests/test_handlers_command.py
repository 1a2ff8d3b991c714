"""`altinn-receiver handlers list`: every built-in with its options' types and defaults, and the dotted paths a
config names, each loaded as `serve` would load it; one that cannot be loaded is listed with why, and exit status 1.
(The installed example plugin's entry point: tests/test_plugin_example.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from receiver.config import CONFIG_ENV
from tests.ingest_support import config_text, run_cli
from tests.pipeline_support import pipelines_toml
from tests.support import write_config


def listed(*args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = run_cli("handlers", "list", "--json", *args)
    return result.returncode, {
        row["source"] + " " + row["name"]: row for row in map(json.loads, result.stdout.splitlines())
    }


def test_the_built_ins_with_their_options_types_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, rows = listed("--config", str(Path(__file__).parent / "data" / "README.md"))
    assert code == 2 and rows == {}, "a --config that is not TOML is a config error, as for every command"
    monkeypatch.chdir(tmp_path)  # no ./receiver.toml and no $ALTINN_RECEIVER_CONFIG: no config to read
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    result = run_cli("handlers", "list")
    assert result.returncode == 0
    forward = next(line for line in result.stdout.splitlines() if line.startswith("forward_http "))
    assert forward.split()[1:3] == ["builtin", "no"]
    assert 'url: str (required); mode: "structured" | "binary" = "structured"; headers: dict[str, str] = {}' in forward
    assert 'timeout: duration = "10s"' in forward


def test_dotted_paths_from_the_config_and_one_that_cannot_be_loaded(tmp_path: Path) -> None:
    toml = pipelines_toml(
        (["*"], ["recorder", "tests.dispatch_plugins:Lifecycle", "gone"]),
        dispatch={},
        handlers={"recorder": {"use": "tests.dispatch_plugins:Recorder", "path": "r.jsonl"},
                  "gone": {"use": "tests.no_such_module:Handler"}},
    )  # fmt: skip
    config = write_config(tmp_path / "receiver.toml", config_text(tmp_path / "r.db") + toml)
    code, rows = listed("--config", str(config))
    assert code == 1, "a handler that cannot be loaded"
    assert [r["options"] for r in rows.values() if r["source"] == "builtin" and r["name"] == "log"] == [[]]
    recorder = rows["tests.dispatch_plugins:Recorder recorder"]
    assert (recorder["kind"], recorder["uses_altinn"], recorder["error"]) == ("path", False, "")
    assert recorder["options"] == [
        {"name": "path", "type": "path", "default": None, "required": True},
        {"name": "seconds", "type": "duration", "default": "0s", "required": False},
    ]
    assert rows["tests.dispatch_plugins:Lifecycle lifecycle"]["options"][0]["name"] == "path"
    gone = rows["tests.no_such_module:Handler tests.no_such_module:Handler"]
    assert gone["uses_altinn"] is None and "cannot import 'tests.no_such_module'" in gone["error"]
