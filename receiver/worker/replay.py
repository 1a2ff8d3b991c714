"""Putting events back in the queue, as `events replay` and the console's replay buttons do: what a replay may
touch (never an event being processed, one whose payload retention pruned, or one the doors refuse), and the
replay itself in short batches, so the server's writers never wait long on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from receiver.store.inbox import EventFilter
from receiver.store.interface import Database
from receiver.store.operations import REPLAY_BATCH, events_by_id, replay_events, select_events
from receiver.store.records import InboxRecord
from receiver.web.cloudevent import refusal


@dataclass
class ReplayPlan:
    """What a replay would touch: the events to put back, those left alone and why, ids that are not stored."""

    events: list[InboxRecord] = field(default_factory=list)
    busy: list[InboxRecord] = field(default_factory=list)
    pruned: list[InboxRecord] = field(default_factory=list)
    """Retention dropped their payload: they cannot run again."""
    refused: list[InboxRecord] = field(default_factory=list)
    """The doors refuse them (catch-up kept them dead, or an older release stored them): they must never run."""
    unknown: list[str] = field(default_factory=list)


async def plan_replay(conn: Database, ids: Sequence[str], selection: EventFilter) -> ReplayPlan:
    """The plan for these ids, or (without ids) for every event `selection` matches."""
    if ids:
        records, unknown = await events_by_id(conn, ids)
    else:
        records, unknown = await select_events(conn, selection), []
    plan = ReplayPlan(unknown=unknown)
    for record in records:
        if record.status == "processing":
            plan.busy.append(record)
        elif record.pruned:
            plan.pruned.append(record)
        elif refusal(record.raw) is not None:
            plan.refused.append(record)
        else:
            plan.events.append(record)
    return plan


async def replay_in_batches(
    conn: Database, ids: Sequence[str], on_batch: Callable[[int], object] = lambda done: None
) -> int:
    """Replay these events `REPLAY_BATCH` at a time (`on_batch` hears each batch's size); returns how many
    changed (one that a worker took meanwhile is left alone)."""
    replayed = 0
    for start in range(0, len(ids), REPLAY_BATCH):
        batch = ids[start : start + REPLAY_BATCH]
        replayed += await replay_events(conn, batch)
        on_batch(len(batch))
    return replayed
