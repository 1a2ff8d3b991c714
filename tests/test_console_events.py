"""The console's event log and dead letters on each store backend, over real HTTP against `altinn-receiver serve`:
filters and paging on /events, its live stream (a new event and its status change within 2 s, the stream ending on
SIGTERM within the shutdown bound), and dead events replayed from /dead (one, and all matching a filter, after a
confirmation naming the count) reaching `done` through the running dispatcher."""

from __future__ import annotations

import html
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from altinn_sim.testing import Webhook
from receiver.config import StoreConfig
from receiver.timeutil import iso_after
from tests.console_support import BEARER, ConsoleServe, attempt_rows, csrf_token, row_ids
from tests.dispatch_support import wait_settled
from tests.ingest_support import PUBLISHED, new_event, push, webhook
from tests.pipeline_support import pipelines_toml
from tests.store_backends import statuses
from tests.support import wait_until

READ = "no.altinn.correspondence.correspondenceread"
FAST = {"poll_interval": "50ms", "backoff_base": "20ms", "backoff_cap": "100ms"}


def push_all(server: ConsoleServe, events: list[dict[str, Any]]) -> list[str]:
    with httpx.Client() as client:
        for event in events:
            assert push(client, webhook(server.url), event).status_code == 200
    return [str(event["id"]) for event in events]


def listed(client: httpx.Client, query: str = "") -> list[str]:
    answer = client.get(f"/events?{query}")
    assert answer.status_code == 200, answer.text
    return row_ids(answer.text)


def test_the_event_log_filters_and_pages_newest_first(tmp_path: Path, store_config: StoreConfig) -> None:
    extra = pipelines_toml(([PUBLISHED], ["log"]), dispatch=FAST)  # a read event has no pipeline: skipped
    with ConsoleServe(tmp_path, store_config, extra=extra) as server, server.client(headers=BEARER) as client:
        published = push_all(server, [new_event() for _ in range(51)])
        [read] = push_all(server, [new_event(type=READ, resourceinstance="the-instance")])
        wait_settled(store_config, 52)
        newest_first = [read, *reversed(published)]

        first = client.get("/events")
        assert row_ids(first.text) == newest_first[:50]
        older = re.search(r'<a href="(/events\?[^"]+)" rel="next">Older</a>', first.text)
        assert older, "no link to the older events"
        page_two = client.get(html.unescape(older.group(1)))
        assert row_ids(page_two.text) == newest_first[50:] and 'rel="next"' not in page_two.text

        assert listed(client, "status=skipped") == [read]
        assert listed(client, "status=done") == newest_first[1:51]
        assert listed(client, "type=*read") == [read]
        assert listed(client, "type=no.altinn.correspondence.correspondence%2A&status=skipped") == [read]
        assert listed(client, "resourceinstance=the-instance") == [read]
        assert listed(client, f"q={published[7]}") == [published[7]]
        assert listed(client, "since=1h") == newest_first[:50]
        assert listed(client, "until=1h") == []
        assert listed(client, f"since={iso_after(60)}") == []
        assert listed(client, f"until={iso_after(60)}&q={read}") == [read]

        bad_time = client.get("/events?since=yesterday")
        assert bad_time.status_code == 400 and "since must be a time such as" in bad_time.text
        bad_status = client.get("/events?status=lost")
        assert bad_status.status_code == 400 and "status must be one of" in bad_status.text


def messages(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """The server-sent events on a stream's lines: {field: value} per message (comments left out)."""
    message: dict[str, str] = {}
    for line in lines:
        if not line:
            if message:
                yield message
            message = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            message[name] = value.removeprefix(" ")


def test_the_live_stream_shows_new_events_and_changes_within_2s_and_ends_on_sigterm(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    extra = pipelines_toml(([PUBLISHED], ["log"]), dispatch=FAST)
    server = ConsoleServe(tmp_path, store_config, extra=extra, shutdown_timeout="5s")
    with server, server.client(headers=BEARER, timeout=httpx.Timeout(10, read=6)) as client:
        page = client.get("/events?type=*published")
        found = re.search(r'data-stream="([^"]+)"', page.text)
        assert found, "the page has no live stream"
        stream_path = html.unescape(found.group(1))
        [between] = push_all(server, [new_event()])  # after the page, before its stream: must not be lost
        [filtered_out] = push_all(server, [new_event(type=READ)])
        with client.stream("GET", stream_path, headers={"Accept": "text/event-stream"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            changes = messages(stream.iter_lines())
            seen: list[str] = []

            def next_change(event_id: str) -> tuple[str, float]:
                """The status in the next change of this event on the stream, and how long it took to come."""
                started = time.monotonic()
                while True:
                    message = next(changes)
                    if message.get("event") != "change":
                        continue
                    change = json.loads(message["data"])
                    assert f'data-id="{change["id"]}"' in change["html"]
                    seen.append(change["id"])
                    if change["id"] == event_id:
                        return change["status"], time.monotonic() - started

            while next_change(between)[0] != "done":
                pass
            [fresh] = push_all(server, [new_event()])
            status, took = next_change(fresh)
            assert took < 2.0
            while status != "done":
                status, took = next_change(fresh)
                assert took < 2.0
            page = client.get(f"/events/{fresh}")
            replayed = client.post(f"/events/{fresh}/replay", data={"csrf_token": csrf_token(page.text)})
            assert replayed.status_code == 303
            assert next_change(fresh)[1] < 2.0  # the replay's change of status: pending again (or done already)
            assert filtered_out not in seen

            server.signal(signal.SIGTERM)
            terminated = time.monotonic()
            rest = list(changes)  # the stream ends: the server says so, then closes it
            ended = time.monotonic() - terminated
            assert rest and rest[-1]["event"] == "end" and ended < 5.0
        assert server.wait(10) == 0 and time.monotonic() - terminated < 5.0


def replay(client: httpx.Client, form: dict[str, Any]) -> tuple[str, httpx.Response]:
    """Ask to replay (the confirmation page's heading), then confirm (the answer)."""
    token = csrf_token(client.get("/dead").text)
    asked = client.post("/dead/replay", data={"csrf_token": token, **form})
    assert asked.status_code == 200, asked.text
    heading = re.search(r"<h1>(.*?)</h1>", asked.text)
    assert heading
    confirm = client.post("/dead/replay", data={"csrf_token": csrf_token(asked.text), **form, "confirmed": "1"})
    return heading.group(1), confirm


def test_dead_events_replayed_from_the_console_reach_done(tmp_path: Path, store_config: StoreConfig) -> None:
    with Webhook(status=400) as target:  # the case system refuses every event: dead at once
        extra = pipelines_toml(
            (["*"], ["to_case_system"]),
            dispatch=FAST,
            handlers={"to_case_system": {"use": "forward_http", "url": f"{target.url}/case"}},
        )
        with ConsoleServe(tmp_path, store_config, extra=extra) as server, server.signed_in() as client:
            events = [new_event(), new_event(type=READ), new_event(type=READ)]
            one, *reads = push_all(server, events)
            assert set(wait_settled(store_config, 3).values()) == {"dead"}

            page = client.get("/dead")
            assert sorted(row_ids(page.text)) == sorted([one, *reads])
            [(count, key)] = re.findall(
                r'<td class="num">(\d+)</td>\s*<td class="error"><a href="/dead\?reason=(\w+)"', page.text
            )
            assert count == "3" and "400" in page.text
            assert sorted(row_ids(client.get(f"/dead?reason={key}").text)) == sorted([one, *reads])

            target.status = 200  # the case system is fixed
            heading, done = replay(client, {"id": one})
            assert heading == "Replay 1 dead event?"
            assert done.status_code == 303 and done.headers["location"] == "/dead?replayed=1"
            wait_until(lambda: statuses(store_config)[one] == "done", message="the replayed event to be done")

            heading, done = replay(client, {"all": "1", "type": "*read"})
            assert heading == "Replay 2 dead events?"
            assert done.headers["location"] == "/dead?type=%2Aread&replayed=2"
            assert "Replayed 2 event(s)" in client.get(done.headers["location"]).text
            wait_until(lambda: set(statuses(store_config).values()) == {"done"}, message="every event done")
            assert row_ids(client.get("/dead").text) == []

            # The event's page: both runs, the refused one with the target's status and error, then the one that
            # worked; and the link to its correspondence.
            shown = client.get(f"/events/{one}").text
            first, second = attempt_rows(shown)
            number, _, _, step, took, outcome, http_status, error = first
            assert (number, step, outcome, http_status) == ("1", "to_case_system", "dead", "400")
            assert "HTTP 400" in html.unescape(error) and took.endswith(("ms", "s"))
            assert (second[0], second[3], second[5], second[6], second[7]) == ("1", "to_case_system", "done", "", "")
            instance = next(e["resourceinstance"] for e in events if e["id"] == one)
            assert f'<a href="/correspondences/{instance}">' in shown
