"""Claims on a real inbox, on each backend, from several connections at once as several processes would: never one
event twice, never two events of one resourceinstance at a time (not even within one claim of many), each instance
in `time` order (then arrival order), retrying events not holding back later ones, expired leases taken over,
stopped claims given back, and a pause's attempt given back."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from receiver.config import StoreConfig
from receiver.store import queue
from receiver.store.backends import open_backend
from receiver.store.handler_store import Claim, FencedHandlerStore
from receiver.store.inbox import insert_event
from receiver.store.interface import Database
from receiver.store.queue import LeaseLost
from receiver.store.records import InboxRecord, NewEvent
from receiver.timeutil import iso_after, now_iso
from tests.store_backends import event

T = TypeVar("T")


def run(store: StoreConfig, work: Callable[[list[Database]], Awaitable[T]], connections: int = 1) -> T:
    """`work` with `connections` databases open on the store at once, as that many processes would have."""
    backend = open_backend(store)

    async def main() -> T:
        await asyncio.to_thread(backend.migrate)
        conns = [await backend.connect() for _ in range(connections)]
        try:
            return await work(conns)
        finally:
            for conn in conns:
                await conn.close()

    return asyncio.run(main())


async def add(conn: Database, events: list[NewEvent]) -> None:
    for new in events:
        assert await insert_event(conn, new, "push")


async def claim_all(conn: Database, owner: str, lease: float = 60.0) -> list[InboxRecord]:
    """Claim in batches of three until nothing more may run."""
    claimed = []
    while batch := await queue.claim(conn, owner, lease, limit=3):
        claimed += batch
    return claimed


async def claim_one(conn: Database, owner: str, lease: float = 60.0) -> InboxRecord | None:
    claimed = await queue.claim(conn, owner, lease)
    assert len(claimed) <= 1
    return claimed[0] if claimed else None


def test_concurrent_claimers_take_each_instance_once_and_its_earliest_event_first(store_config: StoreConfig) -> None:
    rng = random.Random(7)
    instances = [str(uuid.uuid4()) for _ in range(20)]
    events = [event(i, f"2026-01-05T10:00:{s:02d}.{rng.randrange(10**7):07d}Z") for i in instances for s in range(10)]
    rng.shuffle(events)
    earliest = {i: min((e for e in events if e.resourceinstance == i), key=lambda e: e.time).id for i in instances}

    async def work(conns: list[Database]) -> list[InboxRecord]:
        await add(conns[0], events)
        per_claimer = await asyncio.gather(*(claim_all(c, f"owner-{n}") for n, c in enumerate(conns)))
        return [record for claimed in per_claimer for record in claimed]

    claimed = run(store_config, work, connections=4)
    assert sorted(r.resourceinstance for r in claimed) == sorted(instances)  # one each: none finished yet
    assert {r.resourceinstance: r.id for r in claimed} == earliest
    assert all(r.status == "processing" and r.attempts == 1 for r in claimed)


def test_one_claim_of_many_takes_the_earliest_event_of_each_instance_and_leaves_the_busy_ones(
    store_config: StoreConfig,
) -> None:
    rng = random.Random(8)
    instances = [str(uuid.uuid4()) for _ in range(30)]
    events = [event(i, f"2026-01-05T10:00:{s:02d}.{rng.randrange(10**7):07d}Z") for i in instances for s in range(5)]
    rng.shuffle(events)
    time_of = {e.id: e.time for e in events}
    earliest = {i: min((e.id for e in events if e.resourceinstance == i), key=time_of.__getitem__) for i in instances}

    async def work(conns: list[Database]) -> tuple[list[InboxRecord], list[InboxRecord]]:
        await add(conns[0], events)
        first = await queue.claim(conns[0], "me", 60, limit=10)
        rest = await queue.claim(conns[0], "me", 60, limit=100)
        return first, rest

    first, rest = run(store_config, work)
    # The first claim takes the 10 instances whose earliest events come first, the second the other 20.
    assert {r.id for r in first} == set(sorted(earliest.values(), key=time_of.__getitem__)[:10])
    assert {r.resourceinstance: r.id for r in first + rest} == earliest


def test_an_instance_runs_in_time_order_with_fractions_and_offsets_and_untimed_events_by_arrival(
    store_config: StoreConfig,
) -> None:
    timed = [
        event("a", "2026-01-05T10:00:01Z"),  # 10:00:01
        event("a", "2026-01-05T10:00:00.5000001Z"),  # 10:00:00.5
        event("a", "2026-01-05T11:00:00.25+02:00"),  # 09:00:00.25, the earliest
    ]
    untimed = [event("b") for _ in range(3)]

    async def work(conns: list[Database]) -> list[str]:
        conn = conns[0]
        await add(conn, [*timed, *untimed])
        order = []
        while (record := await claim_one(conn, "me")) is not None:
            order.append(record.id)
            assert await queue.finish(conn, record.seq, "me", "done")
        return order

    order = run(store_config, work)
    assert [i for i in order if i in {e.id for e in timed}] == [timed[2].id, timed[1].id, timed[0].id]
    assert [i for i in order if i in {e.id for e in untimed}] == [e.id for e in untimed]


def test_a_retrying_event_does_not_hold_back_later_ones_but_goes_first_once_due(store_config: StoreConfig) -> None:
    first, second, third = event("c", "2026-01-05T10:00:00Z"), event("c", "2026-01-05T10:00:01Z"), event("c")

    async def work(conns: list[Database]) -> None:
        conn = conns[0]
        await add(conn, [first, second, third])
        claimed = await claim_one(conn, "me")
        assert claimed is not None and claimed.id == first.id
        assert await claim_one(conn, "me") is None  # the instance is busy
        assert await queue.finish(conn, claimed.seq, "me", "retrying", "HTTP 503", iso_after(3600))
        later = await claim_one(conn, "me")
        assert later is not None and later.id == second.id
        assert await queue.finish(conn, later.seq, "me", "done")
        await conn.execute("UPDATE inbox SET next_attempt_at = :now WHERE id = :id", {"now": now_iso(), "id": first.id})
        due = await claim_one(conn, "me")
        assert due is not None and (due.id, due.attempts, due.last_error) == (first.id, 2, "HTTP 503")

    run(store_config, work)


def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_record_an_outcome(store_config: StoreConfig) -> None:
    async def work(conns: list[Database]) -> None:
        await add(conns[0], [event("d")])
        died, next_worker = queue.claim_token("worker-that-died", 1), queue.claim_token("next-worker", 1)
        gone = await claim_one(conns[0], died, 0.2)
        assert gone is not None
        assert await claim_one(conns[1], next_worker) is None  # lease still valid
        await asyncio.sleep(0.3)
        taken = await claim_one(conns[1], next_worker)
        assert taken is not None and (taken.id, taken.attempts, taken.lease_owner) == (gone.id, 2, next_worker)
        assert not await queue.finish(conns[0], gone.seq, died, "done")
        assert await queue.extend_leases(conns[0], "worker-that-died", 60) == set()
        assert await queue.extend_leases(conns[1], "next-worker", 60) == {(taken.seq, next_worker)}
        assert await queue.finish(conns[1], taken.seq, next_worker, "done")

    run(store_config, work, connections=2)


def test_a_taken_over_claims_store_writes_are_refused_and_the_new_owners_land(store_config: StoreConfig) -> None:
    """The fence of `ctx.store`: a write of a run whose claim was taken over changes nothing and raises LeaseLost;
    the new owner's write lands."""
    table = "CREATE TABLE plugin_rows (event_id TEXT, writer TEXT)"
    insert = "INSERT INTO plugin_rows (event_id, writer) VALUES (:event_id, :writer)"
    lost: list[str] = []

    async def work(conns: list[Database]) -> list[tuple[str, str]]:
        await conns[0].execute(table)
        await add(conns[0], [event("g")])
        old, new = queue.claim_token("paused", 1), queue.claim_token("other", 1)
        gone = await claim_one(conns[0], old, 0.1)
        assert gone is not None
        stale = FencedHandlerStore(conns[0], Claim(gone.seq, old, gone.id), lambda: lost.append(old))
        assert await stale.execute(insert, {"event_id": gone.id, "writer": "old"}) == 1  # still ours
        await asyncio.sleep(0.2)
        assert await stale.execute(insert, {"event_id": gone.id, "writer": "old"}) == 1  # expired, not taken
        taken = await claim_one(conns[1], new)
        assert taken is not None
        with pytest.raises(LeaseLost, match=f"the claim on event {gone.id} was taken over by another worker"):
            await stale.execute(insert, {"event_id": gone.id, "writer": "old, too late"})
        with pytest.raises(LeaseLost):
            await stale.execute_many(insert, [{"event_id": gone.id, "writer": "old, too late"}])
        with pytest.raises(LeaseLost):
            await stale.fetch(f"{insert} RETURNING writer", {"event_id": gone.id, "writer": "old, too late"})
        owner = FencedHandlerStore(conns[1], Claim(taken.seq, new, taken.id), lambda: lost.append(new))
        assert await owner.fetch(f"{insert} RETURNING writer", {"event_id": gone.id, "writer": "new"}) == [
            {"writer": "new"}
        ]
        rows = await conns[0].fetch("SELECT event_id, writer FROM plugin_rows ORDER BY writer")
        return [(row["event_id"], row["writer"]) for row in rows]

    rows = run(store_config, work, connections=2)
    assert [writer for _, writer in rows] == ["new", "old", "old"]
    assert lost == [queue.claim_token("paused", 1)] * 3, "told at each refusal (the dispatcher acts on the first)"


def test_released_claims_are_pending_again_or_retrying_with_their_attempt_given_back(store_config: StoreConfig) -> None:
    fresh, failed_before = event("e"), event("f")

    async def work(conns: list[Database]) -> dict[str, tuple[str, int, str]]:
        conn = conns[0]
        await add(conn, [fresh, failed_before])
        await conn.execute(
            "UPDATE inbox SET status = 'retrying', attempts = 2 WHERE id = :id", {"id": failed_before.id}
        )
        for number in (1, 2):  # two claims, two tokens: released together
            assert await claim_one(conn, queue.claim_token("stopping", number)) is not None
        other = await claim_one(conn, queue.claim_token("someone-else", 1))
        assert other is None
        assert await queue.release_claims(conn, "stopping") == 2
        rows = await conn.fetch("SELECT id, status, attempts, lease_owner FROM inbox")
        return {row["id"]: (row["status"], row["attempts"], row["lease_owner"]) for row in rows}

    rows = run(store_config, work)
    assert rows == {fresh.id: ("pending", 0, ""), failed_before.id: ("retrying", 2, "")}


def test_a_retry_that_does_not_count_gives_back_the_attempt_its_claim_counted(store_config: StoreConfig) -> None:
    paused = event("g")

    async def work(conns: list[Database]) -> list[int]:
        conn = conns[0]
        await add(conn, [paused])
        seen = []
        for _ in range(2):
            await conn.execute(
                "UPDATE inbox SET next_attempt_at = :now WHERE id = :id", {"now": now_iso(), "id": paused.id}
            )
            claimed = await claim_one(conn, "me")
            assert claimed is not None
            seen.append(claimed.attempts)
            assert await queue.finish(conn, claimed.seq, "me", "retrying", "paused", now_iso(), count_attempt=False)
        return seen

    assert run(store_config, work) == [1, 1]


def test_only_a_retry_may_leave_its_attempt_uncounted(store_config: StoreConfig) -> None:
    async def work(conns: list[Database]) -> None:
        await add(conns[0], [event("h")])
        claimed = await claim_one(conns[0], "me")
        assert claimed is not None
        with pytest.raises(ValueError, match="only a retry"):
            await queue.finish(conns[0], claimed.seq, "me", "done", count_attempt=False)

    run(store_config, work)
