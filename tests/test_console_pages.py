"""The console's overview, correspondence and subscription pages over HTTP, on each backend: what the store holds,
as the configured role sees it, and attachments served only from inside the attachments folder."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from receiver.config import Config, StoreConfig, SubscriptionConfig, load_config
from receiver.store.inbox import insert_event
from receiver.store.interface import Database
from receiver.store.state import move_cursor, save_subscription
from receiver.sync.subscriptions import fingerprint
from receiver.timeutil import now_iso
from tests.altinn_support import SERVICE_OWNER_SCOPES, new_key, stand_in_config_file
from tests.browser_support import TOKEN, console_server
from tests.store_backends import event, run_on, store_toml

SECRET = "the-current-webhook-secret-0123456789"
OLD_SECRET = "the-previous-webhook-secret-987654"
RESOURCE = "urn:altinn:resource:console-test"
SENDER = "urn:altinn:organization:identifier-no:991825827"
RECIPIENT = "urn:altinn:organization:identifier-no:312345678"
CID = "7c1f4a52-0d3e-4d8b-9a55-2b8e6c1d0f11"
AID = "0f6a2c8e-4b1d-4e3a-8c7f-5d9e2a1b3c44"


@dataclass(frozen=True)
class NoAltinn:
    """Where the config says Altinn is: nothing listens there, and these pages never call it."""

    url: str = "http://127.0.0.1:9"
    issuer: str = "http://127.0.0.1:9/"


def console_config(tmp_path: Path, store: StoreConfig, role: str, extra: str = "") -> Config:
    scopes = (
        SERVICE_OWNER_SCOPES if role == "service-owner" else ("altinn:events.subscribe", "altinn:correspondence.read")
    )
    path = stand_in_config_file(
        NoAltinn(), tmp_path, new_key(), role=role, scopes=scopes,
        receiver=f'secret = "{SECRET}"\nprevious_secrets = ["{OLD_SECRET}"]\npublic_url = "https://receiver.example/events"',
        extra=store_toml(store) + extra + f'[[subscriptions]]\nresource = "{RESOURCE}"\n'
        + f'[[subscriptions]]\nresource = "{RESOURCE}"\ntype = "never.registered"\n'
        + f'[console]\nport = 0\ntoken = "{TOKEN}"\n',
    )  # fmt: skip
    return load_config(path)


def recipient_config(tmp_path: Path, store: StoreConfig) -> tuple[Config, Path]:
    attachments = tmp_path / "attachments"
    extra = f"[handlers.download_attachments]\ndir = {json.dumps(str(attachments))}\n"
    return console_config(tmp_path, store, "recipient", extra), attachments


async def add_correspondence(db: Database, *, title: str, details: dict[str, object]) -> None:
    await db.execute(
        "INSERT INTO correspondences (correspondence_id, resource_id, sender, recipient, status, message_title,"
        " details, first_event_at, updated_at) VALUES (:id, :resource, :sender, :recipient, 'Published', :title,"
        " :details, :at, :at)",
        {"id": CID, "resource": RESOURCE, "sender": SENDER, "recipient": RECIPIENT, "title": title,
         "details": json.dumps(details), "at": now_iso()},
    )  # fmt: skip


async def add_attachment(db: Database, attachment_id: str, file_name: str, path: str) -> None:
    await db.execute(
        "INSERT INTO correspondence_attachments (correspondence_id, attachment_id, file_name, size, checksum, status,"
        " expiration_time, path, updated_at) VALUES (:cid, :aid, :name, 5, '', 'Published', '', :path, :at)",
        {"cid": CID, "aid": attachment_id, "name": file_name, "path": path, "at": now_iso()},
    )


def test_the_overview_shows_readiness_backlog_dead_subscriptions_catchup_and_the_store(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    config = console_config(tmp_path, store_config, "service-owner")
    waiting = event("c-waiting")

    async def fill(db: Database) -> None:
        for one in (waiting, event("c-dead"), event("c-done")):
            await insert_event(db, one, "push")
        await db.execute("UPDATE inbox SET status = 'dead' WHERE resourceinstance = 'c-dead'")
        await db.execute("UPDATE inbox SET status = 'done' WHERE resourceinstance = 'c-done'")
        await save_subscription(db, 4711, SubscriptionConfig(RESOURCE), "https://receiver.example/events",
                                fingerprint(SECRET), validated=True)  # fmt: skip
        await move_cursor(db, SubscriptionConfig(RESOURCE), "cursor-event-42")

    run_on(store_config, fill)
    with console_server(config) as console:
        page = console.get("/")
    assert page.status_code == 200
    text = page.text
    assert 'id="readiness"' in text and ">ready<" in text
    assert f'href="/events/{waiting.id}"' in text  # the oldest unprocessed event
    assert '<a href="/dead">1</a>' in text
    assert "4711" in text and "validated" in text and "cursor-event-42" in text
    assert ("postgresql" if store_config.url else "sqlite") in text.split('id="store"')[1]
    chart = text.split('id="throughput"')[1].split("</svg>")[0]
    assert sum(int(n) for n in re.findall(r"(\d+) received</title>", chart)) == 3
    assert sum(int(n) for n in re.findall(r"(\d+) processed</title>", chart)) == 2  # the done and the dead


def test_a_recipient_sees_sender_title_and_downloads_attachments(tmp_path: Path, store_config: StoreConfig) -> None:
    config, attachments = recipient_config(tmp_path, store_config)
    on_disk = attachments / CID / AID / "vedtak.pdf"
    on_disk.parent.mkdir(parents=True)
    on_disk.write_bytes(b"%PDF-")
    gone = "1d7b9e3a-6c2f-4a8e-b5d1-9f0e3c2a7b66"

    async def fill(db: Database) -> None:
        history = [{"status": "Published", "statusChanged": "2026-11-30T10:00:02Z"}]
        await add_correspondence(db, title="Vedtak om tilskudd", details={"statusHistory": history})
        await add_attachment(db, AID, "vedtak.pdf", str(on_disk))
        await add_attachment(db, gone, "utløpt.pdf", "")

    run_on(store_config, fill)
    with console_server(config) as console:
        listing = console.get("/correspondences").text
        one = console.get(f"/correspondences/{CID}").text
        download = console.get(f"/correspondences/{CID}/attachments/{AID}")
        searched = console.get("/correspondences", params={"q": "tilskudd"}).text
        missed = console.get("/correspondences", params={"q": "nothing like it"}).text
        unknown = console.get("/correspondences/no-such-id")
    assert "Vedtak om tilskudd" in listing and SENDER in listing and "<th>title</th>" in listing
    assert CID in searched and CID not in missed
    assert SENDER in one and "Vedtak om tilskudd" in one
    assert f'href="/correspondences/{CID}/attachments/{AID}"' in one
    assert "utløpt.pdf <span" in one and f"/attachments/{gone}" not in one  # listed, without a link
    assert download.status_code == 200 and download.content == b"%PDF-"
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert unknown.status_code == 404


def test_an_attachment_is_served_only_from_inside_the_attachments_folder(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    config, attachments = recipient_config(tmp_path, store_config)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the console")
    folder = attachments / CID
    folder.mkdir(parents=True)
    (folder / "link.txt").symlink_to(secret)
    rows = {
        "absolute-outside": str(secret),
        "dot-dot": f"{attachments}/{CID}/../../secret.txt",
        "relative-dot-dot": os.path.relpath(secret, Path.cwd()),
        "link-out": str(folder / "link.txt"),
        "a-folder": str(folder),
        "missing": str(folder / "gone.pdf"),
        "system-file": "/etc/passwd",
    }

    async def fill(db: Database) -> None:
        await add_correspondence(db, title="t", details={})
        for attachment_id, path in rows.items():
            await add_attachment(db, attachment_id, "f.txt", path)

    run_on(store_config, fill)
    with console_server(config) as console:
        page = console.get(f"/correspondences/{CID}").text
        answers = {attachment_id: console.get(f"/correspondences/{CID}/attachments/{attachment_id}")
                   for attachment_id in rows}  # fmt: skip
        by_url = console.get(f"/correspondences/{CID}/attachments/{quote('../../secret.txt', safe='')}")
        by_path = console.get(f"/correspondences/{CID}/attachments/../../../../etc/passwd")
    for attachment_id, answer in answers.items():
        assert answer.status_code == 404, attachment_id
        assert "not for the console" not in answer.text and "root:" not in answer.text
        assert f'/attachments/{attachment_id}"' not in page
    assert by_url.status_code == 404 and by_path.status_code == 404


def test_a_service_owner_sees_recipient_status_and_history_but_no_content(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    config = console_config(tmp_path, store_config, "service-owner")
    pushed = event(CID, "2026-11-30T10:00:03Z")

    async def fill(db: Database) -> None:
        history = [{"status": "Initialized", "statusChanged": "2026-11-30T10:00:01Z"},
                   {"status": "Published", "statusChanged": "2026-11-30T10:00:02Z"}]  # fmt: skip
        await add_correspondence(db, title="", details={"statusHistory": history, "content": None})
        await insert_event(db, pushed, "push")

    run_on(store_config, fill)
    with console_server(config) as console:
        listing = console.get("/correspondences").text
        one = console.get(f"/correspondences/{CID}").text
    assert RECIPIENT in listing and "<th>recipient</th>" in listing and "<th>title</th>" not in listing
    assert RECIPIENT in one and "Altinn returns no content to the sender" in one
    assert "<h2>Attachments</h2>" not in one
    history = one.split('id="status-history"')[1].split("</ol>")[0]
    assert history.index("Initialized") < history.index("Published")
    assert f'href="/events/{pushed.id}"' in one and "pending" in one


def test_subscriptions_show_filters_validation_code_rotation_and_cursor(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    config = console_config(tmp_path, store_config, "service-owner")
    endpoint = "https://receiver.example/events"

    async def fill(db: Database) -> None:
        key = SubscriptionConfig(RESOURCE)
        await save_subscription(db, 1, key, endpoint, fingerprint(OLD_SECRET), validated=True, superseded=True)
        await save_subscription(db, 2, key, endpoint, fingerprint(SECRET), validated=True)
        await save_subscription(db, 3, SubscriptionConfig(RESOURCE, subject=RECIPIENT), endpoint, fingerprint("gone"),
                                validated=False)  # fmt: skip
        await move_cursor(db, key, "cursor-event-7")

    run_on(store_config, fill)
    with console_server(config) as console:
        page = console.get("/subscriptions")
    assert page.status_code == 200
    rows = {n: page.text.split(f'id="subscription-{n}"')[1].split("</tr>")[0] for n in (1, 2, 3)}
    assert "superseded" in rows[1] and "previous" in rows[1] and "cursor-event-7" in rows[1]
    assert "validated" in rows[2] and "current" in rows[2] and fingerprint(SECRET) in rows[2]
    assert "unvalidated" in rows[3] and "no longer accepted" in rows[3] and RECIPIENT in rows[3]
    assert "no longer in the config" in rows[3]
    assert "never.registered" in page.text.split("Configured, not registered")[1]
    assert SECRET not in page.text and OLD_SECRET not in page.text


@pytest.mark.parametrize("path", ["/", "/correspondences", f"/correspondences/{CID}", "/subscriptions"])
def test_the_pages_need_the_token(tmp_path: Path, path: str) -> None:
    config = console_config(tmp_path, StoreConfig(path=tmp_path / "receiver.db"), "service-owner")
    with console_server(config) as console:
        wrong = console.get(path, headers={"Authorization": "Bearer " + "x" * 40})
        anonymous = console.get(path, headers={"Authorization": ""})
    assert wrong.status_code == 401
    assert anonymous.status_code in (303, 401)
