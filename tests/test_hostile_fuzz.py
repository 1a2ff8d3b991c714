"""The standing adversarial properties (hypothesis; `make fuzz` runs them with FUZZ_EXAMPLES examples, `make test` a
small sample): the webhook over real HTTP never answers 5xx while its store is healthy and every event it
acknowledges reads back from the store; catch-up's page reading never raises, keeps every item (good ones to store,
bad ones as storable dead rows) and always has a cursor it can store; and end to end against the simulator,
catch-up never wedges: the cursor reaches the last event and every event is in the inbox."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from receiver.altinn import AltinnClients, EventPage
from receiver.config import Config, StoreConfig, SubscriptionConfig
from receiver.onboarding.demo import ReceiverSetup, register_identity
from receiver.server_thread import ServerThread
from receiver.store import db, inbox, state
from receiver.store.backends import open_backend
from receiver.store.inbox import InboxWriter
from receiver.store.interface import Database
from receiver.store.records import InboxRecord, NewEvent
from receiver.sync.catchup import RunResult, catch_up, read_page
from receiver.text import unstorable
from tests.catchup_support import event as altinn_event
from tests.catchup_support import fresh_resource
from tests.hostile_strategies import JSON_VALUES, TEXT, cloud_events, examples
from tests.ingest_support import make_config, running_app, webhook
from tests.store_backends import BACKENDS, new_store_config
from tests.support import wait_until

# --- the webhook ---


@dataclass
class Push:
    """One request: its body and headers, and the id the webhook would store it under (None if it cannot be one)."""

    body: bytes
    headers: dict[str, str]
    event_id: str | None


@st.composite
def pushes(draw: st.DrawFn) -> Push:
    event = draw(cloud_events())
    event_id = event.get("id") if isinstance(event.get("id"), str) else None
    if draw(st.integers(0, 4)) == 0:  # binary mode: attributes in ce-* headers, `data` as the body
        headers = {"content-type": "application/json"}
        for name, value in event.items():
            if name != "data" and isinstance(value, str) and name.isascii() and name.isalnum():
                headers[f"ce-{name.lower()}"] = quote(value.encode("utf-8", "surrogatepass"), safe="")
        body = json.dumps(event.get("data")).encode() if "data" in event else b""
        return Push(body, headers, event_id)
    if draw(st.integers(0, 9)) == 0:  # deeply nested data, past what any parser recurses into
        depth = draw(st.integers(100, 5000))
        return Push(b'{"specversion":"1.0","id":"deep","source":"s","type":"t","data":%s%s}' % (b"[" * depth,
                    b"]" * depth), {"content-type": "application/json"}, "deep")  # fmt: skip
    # Lone surrogates go as JSON escapes, or (ensure_ascii off) as the bytes UTF-8 has no place for. Two that make a
    # pair travel as the pair's escapes, which JSON reads as the one character they encode.
    text = json.dumps(event, ensure_ascii=draw(st.sampled_from([True, True, True, False])))
    event_id = json.loads(json.dumps(event_id)) if event_id is not None else None
    return Push(text.encode("utf-8", "surrogatepass"), {"content-type": "application/cloudevents+json"}, event_id)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Config]]:
    config = make_config(tmp_path_factory.mktemp("fuzz-webhook"))
    with running_app(config) as server:
        yield server, config


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.mark.fuzz
@settings(max_examples=examples(100))
@given(push=pushes())
def test_the_webhook_never_answers_5xx_and_every_acknowledged_event_reads_back(
    receiver: tuple[ServerThread, Config], client: httpx.Client, push: Push
) -> None:
    server, config = receiver
    response = client.post(webhook(server.url), content=push.body, headers=push.headers)
    assert response.status_code in (200, 400, 413), response.text
    if response.status_code == 400:
        assert "attribute" in response.json()
        return
    if response.json()["status"] == "validation":
        return
    assert push.event_id is not None
    with closing(db.connect_sync(config.store.path, read_only=True)) as conn:
        rows = conn.execute("SELECT * FROM inbox WHERE id = ?", (push.event_id,)).fetchall()
    [record] = [InboxRecord.from_row(dict(row)) for row in rows]
    assert record.event["id"] == push.event_id  # the event as it was received reads back


# --- catch-up's reading of a page, into a real store ---


class Store:
    """A real store (an SQLite file or a PostgreSQL schema) open on a loop of its own, for many examples."""

    def __init__(self, config: StoreConfig) -> None:
        backend = open_backend(config)
        backend.create_if_missing()
        self.loop = asyncio.new_event_loop()
        # Background work's: no fsync per commit; durability is not what these properties are about.
        self.conn: Database = self.loop.run_until_complete(backend.connect(background=True))

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def close(self) -> None:
        self.run(self.conn.close())
        self.loop.close()


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """On each backend: what one store can hold, the other may not (SQLite no lone surrogate, PostgreSQL no NUL)."""
    database = request.getfixturevalue("postgres_database") if request.param == "postgresql" else ""
    opened = Store(new_store_config(request.param, tmp_path_factory.mktemp("fuzz-pages"), database))
    yield opened
    opened.close()


PAGE_ITEMS = st.lists(st.one_of(cloud_events(), cloud_events(), JSON_VALUES), min_size=1, max_size=6)
KEY = SubscriptionConfig("urn:altinn:resource:fuzz")


@pytest.mark.fuzz
@settings(max_examples=examples(100))
@given(items=PAGE_ITEMS, next_after=st.none() | TEXT, previous=st.sampled_from(["0", "an-earlier-id"]))
def test_reading_a_page_keeps_every_item_storable_and_moves_the_cursor(
    store: Store, items: list[Any], next_after: str | None, previous: str
) -> None:
    page = EventPage(events=json.loads(json.dumps(items)), next_after=next_after)  # as the pull API's JSON reads
    read = read_page(page, previous)
    assert len(read.events) + len(read.refused) == len(items)

    async def keep() -> None:
        for event in read.events:
            await inbox.insert_event(store.conn, event, "catchup")
        await inbox.insert_refused(store.conn, read.refused, "catchup")
        await state.move_cursor(store.conn, KEY, read.after)

    store.run(keep())  # every row and the cursor can be stored: nothing fails a commit
    last = page.events[-1]  # as read: two surrogates that pair are one character
    if isinstance(last, dict) and isinstance(last.get("id"), str) and last["id"] and not unstorable(last["id"]):
        assert read.after == last["id"]
    elif next_after and not unstorable(next_after):
        assert read.after == next_after
    else:
        assert read.after == previous
    for refused in read.refused:
        json.loads(refused.raw)
        assert refused.reason.startswith("invalid event from the pull API: ")


# --- end to end: the simulator's pull API, catch-up, a real store ---


@dataclass
class Catchup:
    sim: RunningSimulator
    config: Config
    clients: AltinnClients
    writer: InboxWriter
    store: Store


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catchup]:
    folder = tmp_path_factory.mktemp("fuzz-catchup")
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as sim:
        identity = register_identity(sim, folder)
        resource = fresh_resource(sim, identity.org)
        setup = ReceiverSetup(sim.url, identity, folder / "r.db", [SubscriptionConfig(resource)],
                              catchup={"start": "beginning"})  # fmt: skip
        config = setup.write(folder / "r.toml")
        opened = Store(config.store)
        clients = opened.run(AltinnClients.from_config(config).__aenter__())
        writer = InboxWriter(config.store.path, opened.loop)
        try:
            yield Catchup(sim, config, clients, writer, opened)
        finally:
            writer.close()
            opened.run(clients.__aexit__(None, None, None))
            opened.close()


@pytest.mark.fuzz
@settings(max_examples=examples(10, share=1 / 30))  # each example is a whole catch-up run
@given(contents=st.lists(st.one_of(cloud_events(), st.just({})), min_size=1, max_size=5))
def test_catch_up_against_the_simulator_never_wedges(pulled: Catchup, contents: list[dict[str, Any]]) -> None:
    """Each published item keeps Altinn's shape where the cursor needs it (a fresh id, the resource) and anything
    at all elsewhere; every one ends in the inbox (good ones pending, the rest dead) and the cursor reaches the last."""
    [key] = pulled.config.subscriptions
    items = [{**item, **{k: v for k, v in altinn_event(key.resource).items() if k in ("id", "resource")}}
             for item in contents]  # fmt: skip
    pulled.sim.publish_unchecked(items)

    async def insert(events: list[NewEvent]) -> list[bool]:
        return list(await asyncio.gather(*(pulled.writer.insert_event(e, "catchup") for e in events)))

    def caught_up() -> RunResult | None:  # the pull API shows an event once its (scaled) 30 s lag has passed
        result: RunResult = pulled.store.run(
            catch_up(pulled.store.conn, pulled.clients.events, key, insert, start="beginning", page_size=3)
        )
        assert result.error == ""
        return result if result.after == items[-1]["id"] else None

    wait_until(caught_up, timeout=10, message="the cursor to reach the last event published")
    with closing(sqlite3.connect(pulled.config.store.path)) as conn:
        found = dict(conn.execute(
            f"SELECT id, status FROM inbox WHERE id IN ({', '.join('?' * len(items))})", [i["id"] for i in items]
        ).fetchall())  # fmt: skip
    assert set(found) == {item["id"] for item in items}
    assert set(found.values()) <= {"pending", "dead"}
