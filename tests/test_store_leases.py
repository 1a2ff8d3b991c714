"""The store's leases (receiver/store/leases.py) on each backend: one holder at a time, renewed in place, taken over
once it runs out (a new term), given up at once on release."""

from __future__ import annotations

from receiver.config import StoreConfig
from receiver.store import leases
from receiver.store.interface import Database
from tests.store_backends import run_on
from tests.support import wait_until


def test_one_holder_at_a_time_renewed_taken_over_when_it_runs_out_and_released_at_once(
    store_config: StoreConfig,
) -> None:
    async def first(db: Database) -> tuple[leases.Lease | None, ...]:
        taken = await leases.take(db, "sync", "a:1", 0.5)
        refused = await leases.take(db, "sync", "b:2", 0.5)
        renewed = await leases.take(db, "sync", "a:1", 0.5)
        return taken, refused, renewed, await leases.take(db, "other", "b:2", 60)

    taken, refused, renewed, other = run_on(store_config, first)
    assert taken is not None and renewed is not None and other is not None and refused is None
    assert (taken.holder, taken.term, renewed.term, renewed.since) == ("a:1", 1, 1, taken.since)
    assert renewed.expires_at > taken.expires_at > taken.renewed_at, "renewed for another 0.5 s"
    assert (other.holder, other.term) == ("b:2", 1), "each name its own lease"

    over = wait_until(lambda: run_on(store_config, lambda db: leases.take(db, "sync", "b:2", 60)), timeout=5,
                      message="b to take the lease once a's ran out")  # fmt: skip
    assert (over.holder, over.term) == ("b:2", 2) and over.since > taken.since

    async def second(db: Database) -> tuple[leases.Lease | None, ...]:
        late = await leases.take(db, "sync", "a:1", 60)
        await leases.release(db, "sync", "a:1")  # not a's to release: nothing changes
        held = await leases.current(db, "sync")
        await leases.release(db, "sync", "b:2")
        return late, held, await leases.take(db, "sync", "a:1", 60)

    late, held, again = run_on(store_config, second)
    assert late is None and held == over, "a, late, neither renews nor releases b's lease"
    assert again is not None and (again.holder, again.term) == ("a:1", 3), "released: taken at once"
