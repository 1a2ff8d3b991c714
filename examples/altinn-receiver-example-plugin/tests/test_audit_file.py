"""`audit_file` run as the receiver runs it, through `handlers.testing`: options checked as the config is, `start`,
`handle` and `aclose` around a real store. Run with the plugin and altinn-receiver installed: `pytest tests`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from altinn_receiver_example import AuditFile

from handlers.testing import ConfigError, make_event, run_handler
from receiver.altinn import Correspondence


def fetched(correspondence_id: str) -> Correspondence:
    """What `fetch_correspondence` would have put in `ctx.correspondence`."""
    return Correspondence.from_json(
        {
            "correspondenceId": correspondence_id,
            "status": "Published",
            "content": {"messageTitle": "Nabovarsel for Storgata 1", "messageBody": "..."},
        }
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_line_per_event_with_the_fetched_status_and_title(tmp_path: Path) -> None:
    event = make_event()
    asyncio.run(
        run_handler(AuditFile(), event, options={"path": "audit.jsonl"}, folder=tmp_path,
                    correspondence=fetched(event.resourceinstance))
    )  # fmt: skip
    assert lines(tmp_path / "audit.jsonl") == [
        {"event_id": event.id, "type": event.type, "resourceinstance": event.resourceinstance,
         "status": "Published", "title": "Nabovarsel for Storgata 1"}
    ]  # fmt: skip


def test_without_a_fetch_or_with_include_title_false_the_line_says_less(tmp_path: Path) -> None:
    bare, untitled = make_event(type="no.altinn.correspondence.attachmentexpired"), make_event()
    asyncio.run(run_handler(AuditFile(), bare, options={"path": "a.jsonl"}, folder=tmp_path))
    options = {"path": "a.jsonl", "include_title": False}
    correspondence = fetched(untitled.resourceinstance)
    asyncio.run(run_handler(AuditFile(), untitled, options=options, folder=tmp_path, correspondence=correspondence))
    assert [sorted(line) for line in lines(tmp_path / "a.jsonl")] == [
        ["event_id", "resourceinstance", "type"],
        ["event_id", "resourceinstance", "status", "type"],
    ]


@pytest.mark.parametrize(
    ("options", "key"),
    [({"path": "."}, "handlers.audit_file.path"), ({"path": "a.jsonl", "include_title": "no"},
                                                   "handlers.audit_file.include_title")],
)  # fmt: skip
def test_bad_options_stop_startup_naming_the_key(tmp_path: Path, options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        asyncio.run(run_handler(AuditFile(), options=options, folder=tmp_path))
    assert caught.value.key == key
