"""`altinn-receiver demo`: the whole loop in one command, with a summary and nothing secret on the screen."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from receiver.cli.main import main


def test_demo_with_five_events_processes_every_one_and_exits_0(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    started = time.monotonic()
    result = CliRunner().invoke(main, ["demo", "--events", "5", "--dir", str(folder)])
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("WHAT")))
    table = dict(line.rsplit(maxsplit=1) for line in lines[header + 1 : header + 8])
    table = {name.strip(): count for name, count in table.items()}
    assert table["events sent to this recipient"] == "5" and table["processed"] == "5" and table["dead"] == "0"
    assert int(table["received by push"]) + int(table["received by catch-up"]) == 5
    assert int(table["received by catch-up"]) >= 2  # the events sent while the receiver was down
    assert int(table["attachment bytes"]) > 0
    secret = next(line for line in (folder / "receiver.toml").read_text().splitlines() if line.startswith("secret"))
    code = secret.split('"')[1]
    assert code not in result.output and code not in (folder / "receiver.log").read_text()
    logged = [json.loads(line) for line in (folder / "receiver.log").read_text().splitlines()]
    assert len([line for line in logged if line["msg"] == "serving as two processes"]) == 2, "serve, started twice"
    assert took < 60


def test_demo_refuses_to_empty_a_folder_it_did_not_create(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    result = CliRunner().invoke(main, ["demo", "--events", "1", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a demo folder" in result.stderr
    assert precious.read_text() == "keep me"
