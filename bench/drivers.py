"""The PostgreSQL driver choice, measured: psycopg 3 (with psycopg_pool) against asyncpg on what the store does most.

- **ingest**: N concurrent writers each hand one event to a group-commit loop, which stores everything waiting in one
  multi-row `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id` and commits (`synchronous_commit = on`): commits/s
  and events/s, as the webhook's writer runs;
- **claim**: one `UPDATE … WHERE seq IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT 4) RETURNING *` over a table of
  20 000 open rows and its finishing `UPDATE`, back to back: claims/s.

Both drivers run the same SQL on the same database, one after the other, in one run. asyncpg is not a dependency of
the receiver: install it in the venv to run this (`.venv/bin/pip install asyncpg`); without it only psycopg runs.

    python bench/drivers.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [--seconds 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

COLUMNS = ("id", "type", "source", "subject", "resource", "resourceinstance", "time", "raw", "received_at", "channel")
TABLE = """
    CREATE TABLE bench_inbox (
        seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, source TEXT NOT NULL,
        subject TEXT NOT NULL, resource TEXT NOT NULL, resourceinstance TEXT NOT NULL, time TEXT NOT NULL,
        raw TEXT NOT NULL, received_at TEXT NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
        lease_owner TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0)
"""
RAW = json.dumps({"specversion": "1.0", "type": "no.altinn.correspondence.correspondencepublished", "data": "x" * 300})
CLAIM = (
    "UPDATE bench_inbox SET status = 'processing', lease_owner = {owner}, attempts = attempts + 1 WHERE seq IN"
    " (SELECT seq FROM bench_inbox WHERE status = 'pending' ORDER BY seq LIMIT 4 FOR UPDATE SKIP LOCKED) RETURNING *"
)
FINISH = "UPDATE bench_inbox SET status = 'done', lease_owner = '' WHERE seq = ANY({seqs})"


def row() -> tuple[str, ...]:
    return (str(uuid.uuid4()), "t", "s", "", "urn:altinn:resource:r", str(uuid.uuid4()), "", RAW, "2026", "push")


def insert_sql(count: int, mark: Callable[[int], str]) -> str:
    width = len(COLUMNS)
    values = ", ".join("(" + ", ".join(mark(r * width + c) for c in range(width)) + ")" for r in range(count))
    return f"INSERT INTO bench_inbox ({', '.join(COLUMNS)}) VALUES {values} ON CONFLICT (id) DO NOTHING RETURNING id"


async def group_commit(
    insert: Callable[[list[tuple[str, ...]]], Awaitable[int]], writers: int, seconds: float
) -> dict[str, float]:
    """`writers` tasks each wait for their own event to be committed, then send the next, for `seconds`."""
    waiting: list[tuple[tuple[str, ...], asyncio.Future[None]]] = []
    wake = asyncio.Event()
    commits = events = 0
    stop = time.monotonic() + seconds

    async def committer() -> None:
        nonlocal commits, events
        while time.monotonic() < stop or waiting:
            await wake.wait()
            wake.clear()
            batch, waiting[:] = list(waiting), []
            if not batch:
                continue
            await insert([r for r, _ in batch])
            commits += 1
            events += len(batch)
            for _, future in batch:
                future.set_result(None)

    async def writer() -> None:
        while time.monotonic() < stop:
            future = asyncio.get_running_loop().create_future()
            waiting.append((row(), future))
            wake.set()
            await future

    started, cpu = time.monotonic(), time.process_time()
    task = asyncio.create_task(committer())
    await asyncio.gather(*(writer() for _ in range(writers)))
    wake.set()
    await task
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    return {"commits_per_s": commits / elapsed, "events_per_s": events / elapsed, "rows_per_commit": events / commits,
            "cpu_us_per_event": cpu / events * 1e6}  # fmt: skip


async def claims(claim: Callable[[], Awaitable[list[int]]], finish: Callable[[list[int]], Awaitable[None]],
                 seconds: float) -> dict[str, float]:  # fmt: skip
    count = 0
    started, cpu = time.monotonic(), time.process_time()
    while time.monotonic() - started < seconds:
        await finish(await claim())
        count += 1
    return {
        "claims_per_s": count / (time.monotonic() - started),
        "cpu_us_per_claim": (time.process_time() - cpu) / count * 1e6,
    }


async def bench_psycopg(url: str, writers: int, seconds: float) -> dict[str, float]:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(url, min_size=2, max_size=2, open=False) as pool:
        await pool.open()
        async with pool.connection() as conn:
            await conn.execute("DROP TABLE IF EXISTS bench_inbox")
            await conn.execute(TABLE)
        statements: dict[int, str] = {}

        async def insert(rows: list[tuple[str, ...]]) -> int:
            sql = statements.get(len(rows)) or statements.setdefault(len(rows), insert_sql(len(rows), lambda _: "%s"))
            async with pool.connection() as conn:
                cursor = await conn.execute(sql, [v for r in rows for v in r])
                return len(await cursor.fetchall())

        result = await group_commit(insert, writers, seconds)
        async with pool.connection() as conn:
            await conn.execute("UPDATE bench_inbox SET status = 'pending'")
        claim_sql, finish_sql = CLAIM.format(owner="%s"), FINISH.format(seqs="%s")
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        async with conn:

            async def claim() -> list[int]:
                return [r[0] for r in await (await conn.execute(claim_sql, ["me"])).fetchall()]

            async def finish(seqs: list[int]) -> None:
                await conn.execute(finish_sql, [seqs])

            result |= await claims(claim, finish, seconds)
    return result


async def bench_asyncpg(url: str, writers: int, seconds: float) -> dict[str, float]:
    import asyncpg

    pool = await asyncpg.create_pool(url, min_size=2, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute("DROP TABLE IF EXISTS bench_inbox")
            await conn.execute(TABLE)
        statements: dict[int, str] = {}

        async def insert(rows: list[tuple[str, ...]]) -> int:
            count = len(rows)
            sql = statements.get(count) or statements.setdefault(count, insert_sql(count, lambda i: f"${i + 1}"))
            async with pool.acquire() as conn:
                return len(await conn.fetch(sql, *[v for r in rows for v in r]))

        result = await group_commit(insert, writers, seconds)
        async with pool.acquire() as conn:
            await conn.execute("UPDATE bench_inbox SET status = 'pending'")
            claim_sql, finish_sql = CLAIM.format(owner="$1"), FINISH.format(seqs="$1")

            async def claim() -> list[int]:
                return [r[0] for r in await conn.fetch(claim_sql, "me")]

            async def finish(seqs: list[int]) -> None:
                await conn.execute(finish_sql, seqs)

            result |= await claims(claim, finish, seconds)
    finally:
        await pool.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name, bench in (("psycopg", bench_psycopg), ("asyncpg", bench_asyncpg)):
        if importlib.util.find_spec(name) is None:
            continue
        results[name] = asyncio.run(bench(args.url, args.writers, args.seconds))
    if args.json:
        print(json.dumps(results))
        return
    for name, result in results.items():
        print(name, " ".join(f"{key}={value:.1f}" for key, value in result.items()))


if __name__ == "__main__":
    main()
