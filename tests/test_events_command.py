"""`altinn-receiver events list/show` over a store filled by real pushes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from receiver.cli.main import main
from tests.ingest_support import make_config, new_event, push, running_app, sample, webhook
from tests.store_backends import BACKENDS, new_store_config

FIELDS = {
    "id", "type", "source", "subject", "resource", "resourceinstance", "time",
    "received_at", "channel", "status", "attempts", "last_error",
}  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, object]]]:
    """A store on each backend, filled by pushes; its config file and the events."""
    tmp_path = tmp_path_factory.mktemp("events")
    database = request.getfixturevalue("postgres_database") if request.param == "postgresql" else ""
    config = make_config(tmp_path, store=new_store_config(request.param, tmp_path, database))
    events = [
        new_event(),
        new_event(type="no.altinn.correspondence.correspondencereceiverread"),
        json.loads(sample("correspondence-receiverneverread.json")),
    ]
    with running_app(config) as server, httpx.Client(timeout=10) as client:
        for event in events:
            assert push(client, webhook(server.url), event).status_code == 200
    return tmp_path / "receiver.toml", events


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_json_prints_one_object_per_line_newest_first(store: tuple[Path, list[dict[str, object]]]) -> None:
    config, events = store
    code, out, _ = cli("events", "list", "--config", str(config), "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["id"] for line in lines] == [event["id"] for event in reversed(events)]
    assert set(lines[0]) >= FIELDS
    assert lines[0]["time"] == "2025-06-16T00:00:04.1187263Z"
    assert {line["status"] for line in lines} == {"pending"}


def test_list_filters_by_type_glob_status_and_limit(store: tuple[Path, list[dict[str, object]]]) -> None:
    config, events = store
    _, out, _ = cli("events", "list", "--config", str(config), "--json", "--type", "*receiver*")
    assert len(out.splitlines()) == 2
    _, out, _ = cli("events", "list", "--config", str(config), "--json", "--status", "done")
    assert out == ""
    _, out, _ = cli("events", "list", "--config", str(config), "--json", "--limit", "1")
    assert json.loads(out)["id"] == events[-1]["id"]


def test_list_prints_a_table_for_people(store: tuple[Path, list[dict[str, object]]]) -> None:
    config, events = store
    code, out, _ = cli("events", "list", "--config", str(config))
    assert code == 0
    assert out.splitlines()[0].split()[:4] == ["RECEIVED_AT", "STATUS", "ATTEMPTS", "TYPE"]
    assert all(str(event["id"]) in out for event in events)


def test_show_prints_the_event_as_received(store: tuple[Path, list[dict[str, object]]]) -> None:
    config, events = store
    code, out, _ = cli("events", "show", "--config", str(config), str(events[0]["id"]), "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["event"] == events[0]
    assert set(shown) >= FIELDS
    code, out, _ = cli("events", "show", "--config", str(config), str(events[0]["id"]))
    assert code == 0 and str(events[0]["resourceinstance"]) in out


def test_show_an_unknown_id_exits_1_saying_so(store: tuple[Path, list[dict[str, object]]]) -> None:
    config, _ = store
    code, _, err = cli("events", "show", "--config", str(config), "no-such-id")
    assert code == 1
    assert "no event with id 'no-such-id'" in err


@pytest.mark.parametrize(
    "command",
    [["events", "list"], ["events", "show", "some-id"], ["events", "dead"], ["tail"], ["stats"],
     ["events", "replay", "--status", "dead", "--yes"]],
)  # fmt: skip
def test_a_missing_store_file_is_an_error_not_a_new_store(tmp_path: Path, command: list[str]) -> None:
    config = make_config(tmp_path)
    code, out, err = cli(*command, "--config", str(config.source))
    assert code == 1
    assert err.startswith(f"error: store {config.store.path} does not exist: check store.path") and err.count("\n") == 1
    assert not out
    assert not config.store.path.exists()


def test_list_says_when_nothing_matches_and_prints_nothing_as_json(
    store: tuple[Path, list[dict[str, object]]],
) -> None:
    config, _ = store
    code, out, _ = cli("events", "list", "--config", str(config), "--type", "no.such.type")
    assert (code, out) == (0, "no events match\n")
    code, out, _ = cli("events", "list", "--config", str(config), "--type", "no.such.type", "--json")
    assert (code, out) == (0, "")
