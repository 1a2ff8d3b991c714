"""What the catch-up tests share: a resource of their own in the simulator, correspondence events for it, and what
reached the receiver's inbox."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from altinn_sim import RunningSimulator
from altinn_sim.cloudevent import event_time
from receiver.config import StoreConfig
from tests.store_backends import rows as backend_rows

RECIPIENT_ORG = "312345678"
RECIPIENT = f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"


def fresh_resource(sim: RunningSimulator, owner_org: str) -> str:
    """A resource no other test uses, owned by `owner_org` in the simulator."""
    resource = f"urn:altinn:resource:catchup-test-{uuid.uuid4().hex[:10]}"
    sim.set_resource_owner(resource, owner_org)
    return resource


def event(resource: str, subject: str = RECIPIENT) -> dict[str, Any]:
    """A `correspondencepublished` event for `resource` with fresh ids, as Altinn publishes it."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": "no.altinn.correspondence.correspondencepublished",
        "source": "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",
        "subject": subject,
        "resource": resource,
        "resourceinstance": str(uuid.uuid4()),
        "time": event_time(),
    }


def rows(db: Path, sql: str, *params: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def inbox(db: Path | StoreConfig) -> dict[str, str]:
    """Event id -> the channel it came through, in a store file or any backend's store."""
    sql = "SELECT id, channel FROM inbox"
    found = backend_rows(db, sql) if isinstance(db, StoreConfig) else rows(db, sql)
    return {r["id"]: r["channel"] for r in found}
