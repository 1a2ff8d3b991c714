"""The dispatcher against the simulator, as a recipient: a published correspondence ends up in the store with its
attachments on disk; Altinn's 500s, 429s and hanging answers are retried until done; a correspondence that never
appears (404) is given up after `not_found_retries`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from altinn_sim import SimSettings, running_simulator
from altinn_sim.testing import new_client
from receiver.scopes import READ_SCOPE, SUBSCRIBE_SCOPE, WRITE_SCOPE
from tests.dispatch_support import (
    RECIPIENT,
    RECIPIENT_ORG,
    RECIPIENT_SCOPES,
    RESOURCE,
    query,
    recipient_setup,
    subscribed_receiver,
    wait_settled,
)
from tests.pipeline_support import table

PUBLISHED = "no.altinn.correspondence.correspondencepublished"
CORRESPONDENCE_API = "/correspondence/api/v1/correspondence/*"


def test_published_correspondences_are_stored_with_their_attachments_on_disk(tmp_path: Path) -> None:
    files = tmp_path / "files"
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = recipient_setup(sim, tmp_path, extra=f'[handlers.download_attachments]\ndir = "{files}"\n')
        with subscribed_receiver(setup, tmp_path):
            sent = {
                sim.send_correspondence(RESOURCE, RECIPIENT_ORG, title=f"Vedtak {i}", attachments=2): i
                for i in range(3)
            }
            assert set(wait_settled(setup.store, 3).values()) == {"done"}
        stored = {row["correspondence_id"]: row for row in query(setup.store, "SELECT * FROM correspondences")}
        events = query(setup.store, "SELECT * FROM correspondence_events")
        reader = new_client(sim, RECIPIENT_ORG, list(RECIPIENT_SCOPES)).api()
        for correspondence_id, i in sent.items():
            row = stored[correspondence_id]
            assert (row["message_title"], row["recipient"]) == (f"Vedtak {i}", RECIPIENT)
            assert row["resource_id"] in (RESOURCE, RESOURCE.removeprefix("urn:altinn:resource:"))
            details = json.loads(row["details"])
            assert details["correspondenceId"] == correspondence_id and "statusHistory" in details
            attachments = details["content"]["attachments"]
            assert len(attachments) == 2
            for attachment in attachments:
                url = (
                    f"/correspondence/api/v1/correspondence/{correspondence_id}/attachment/{attachment['id']}/download"
                )
                expected = reader.get(url).content
                on_disk = files / correspondence_id / attachment["id"] / attachment["fileName"]
                assert on_disk.read_bytes() == expected and expected
        assert sorted(e["correspondence_id"] for e in events) == sorted(sent)
        assert {e["type"] for e in events} == {PUBLISHED}
        assert all(e["received_at"].endswith("Z") and e["time"].endswith("Z") for e in events)


def test_500s_429s_and_timeouts_from_altinn_are_retried_until_the_event_is_done(tmp_path: Path) -> None:
    faults = [
        {"path": CORRESPONDENCE_API, "error_rate": 1.0, "error_status": 500, "count": 2},
        {"path": CORRESPONDENCE_API, "error_rate": 1.0, "error_status": 429, "retry_after": "300ms", "count": 1},
        {"path": CORRESPONDENCE_API, "hang": True, "count": 1},
    ]
    extra = '[handlers.fetch_correspondence]\ntimeout = "400ms"\n'
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = recipient_setup(sim, tmp_path, extra=extra)
        with subscribed_receiver(setup, tmp_path):
            assert sim.admin.put("/faults", json=faults).status_code == 200
            correspondence_id = sim.send_correspondence(RESOURCE, RECIPIENT_ORG, title="Etter feil")
            assert list(wait_settled(setup.store, 1).values()) == ["done"]
            assert sim.state_snapshot()["faults"] == [], "every injected fault was met"
        [event] = query(setup.store, "SELECT * FROM inbox")
        assert event["attempts"] == 5  # two 500s, one 429, one timeout, then the answer
        assert event["last_error"] == ""
        runs = query(setup.store, "SELECT * FROM attempts ORDER BY seq")
        assert [(r["attempt"], r["step"], r["outcome"], r["http_status"]) for r in runs[:4]] == [
            (1, "fetch_correspondence", "retrying", 500),
            (2, "fetch_correspondence", "retrying", 500),
            (3, "fetch_correspondence", "retrying", 429),
            (4, "fetch_correspondence", "retrying", None),  # no answer: no status
        ]
        assert "HTTP 500" in runs[0]["error"] and "no answer" in runs[3]["error"]
        assert (runs[4]["attempt"], runs[4]["outcome"], runs[4]["error"], runs[4]["http_status"]) == (
            5,
            "done",
            "",
            None,
        )
        [row] = query(setup.store, "SELECT * FROM correspondences")
        assert (row["correspondence_id"], row["message_title"]) == (correspondence_id, "Etter feil")


def test_a_correspondence_that_stays_not_found_is_dead_after_the_configured_retries(tmp_path: Path) -> None:
    missing = str(uuid.uuid4())
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": PUBLISHED,
        "source": "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",
        "resource": RESOURCE,
        "resourceinstance": missing,
        "subject": RECIPIENT,
        "time": "2026-01-05T10:00:00.1234567Z",
    }
    extra = "[handlers.fetch_correspondence]\nnot_found_retries = 2\n"
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = recipient_setup(sim, tmp_path, extra=extra)
        with subscribed_receiver(setup, tmp_path):
            sim.publish_event(event)
            assert wait_settled(setup.store, 1) == {event["id"]: "dead"}
        [row] = query(setup.store, "SELECT * FROM inbox")
        assert row["attempts"] == 3
        assert "not found (404)" in row["last_error"] and missing in row["last_error"]
        runs = query(setup.store, "SELECT * FROM attempts ORDER BY seq")
        # RetryLater and Permanent raised from Altinn's 404 carry its status.
        assert [(r["step"], r["outcome"], r["http_status"]) for r in runs] == [
            ("fetch_correspondence", "retrying", 404),
            ("fetch_correspondence", "retrying", 404),
            ("fetch_correspondence", "dead", 404),
        ]
        assert query(setup.store, "SELECT * FROM correspondence_events") == []


def recipient_actions(handlers: list[str]) -> str:
    """A `[[pipelines]]` table for published correspondences (recipient_setup writes `[dispatch]` itself)."""
    return "\n".join(table("[pipelines]", {"types": [PUBLISHED], "handlers": handlers}))


def test_a_recipient_pipeline_marks_read_and_confirms_and_without_a_fetch_first_the_event_is_dead(
    tmp_path: Path,
) -> None:
    # The second confirm finds the correspondence already confirmed (errorCode 1041): that counts as done.
    actions = recipient_actions(["fetch_correspondence", "mark_as_read", "confirm", "confirm"])
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        # The client holds the write scope too: a token carrying it would make Altinn treat the receiver as the
        # sender, which never records Fetched, so markasread and confirm would fail (correspondence contract §7.1).
        setup = recipient_setup(sim, tmp_path, extra=actions, scopes=(*RECIPIENT_SCOPES, WRITE_SCOPE))
        with subscribed_receiver(setup, tmp_path):
            confirmed = sim.send_correspondence(RESOURCE, RECIPIENT_ORG, is_confirmation_needed=True,
                                                due="2099-01-01T00:00:00Z")  # fmt: skip
            wait_settled(setup.store, 1)
        (row,) = query(setup.store, "SELECT status, last_error FROM inbox")
        assert (row["status"], row["last_error"]) == ("done", "")
        calls = {(r["method"], r["path"].partition("?")[0], r["scope"]) for r in sim.state_snapshot()["requests"]}
        base = f"/correspondence/api/v1/correspondence/{confirmed}"
        assert {call for call in calls if call[1].startswith("/correspondence/")} == {
            ("GET", f"{base}/details", READ_SCOPE),
            ("POST", f"{base}/markasread", READ_SCOPE),
            ("POST", f"{base}/confirm", READ_SCOPE),
        }
        assert {scope for _, path, scope in calls if path.startswith("/events/")} == {SUBSCRIBE_SCOPE}
        reader = new_client(sim, RECIPIENT_ORG, list(RECIPIENT_SCOPES)).api()
        details = reader.get(f"/correspondence/api/v1/correspondence/{confirmed}/details").json()
        assert {"Fetched", "Read", "Confirmed"} <= {h["status"] for h in details["statusHistory"]}

    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        unfetched = tmp_path / "unfetched"
        setup = recipient_setup(sim, unfetched, extra=recipient_actions(["mark_as_read"]))
        with subscribed_receiver(setup, unfetched):
            sim.send_correspondence(RESOURCE, RECIPIENT_ORG)
            wait_settled(setup.store, 1)
        (row,) = query(setup.store, "SELECT status, last_error FROM inbox")
    assert row["status"] == "dead"
    assert "put fetch_correspondence before mark_as_read" in row["last_error"]


def test_no_access_under_the_policy_ends_the_event_dead_with_that_reason_and_no_new_token(tmp_path: Path) -> None:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = recipient_setup(sim, tmp_path)
        with subscribed_receiver(setup, tmp_path):
            # Once only: a retry with a new token would be answered, and the event would be done.
            no_access = {"path": CORRESPONDENCE_API, "error_rate": 1.0, "error_status": 401, "error_code": 4001,
                         "count": 1}  # fmt: skip
            assert sim.admin.put("/faults", json=[no_access]).status_code == 200
            correspondence_id = sim.send_correspondence(RESOURCE, RECIPIENT_ORG)
            assert list(wait_settled(setup.store, 1).values()) == ["dead"]
        requests = sim.state_snapshot()["requests"]
    [row] = query(setup.store, "SELECT attempts, last_error FROM inbox")
    assert row["attempts"] == 1
    assert row["last_error"].startswith(
        "fetch_correspondence: the organisation has no access to this correspondence under the resource's policy"
    )
    assert correspondence_id in row["last_error"] and "errorCode 4001" in row["last_error"]
    fetches = [r for r in requests if r["path"].startswith("/correspondence/")]
    assert [(r["path"], r["status"]) for r in fetches] == [
        (f"/correspondence/api/v1/correspondence/{correspondence_id}/details", 401)
    ]
    # One grant and one exchange per scope set the receiver used (events, recipient): the refusal cost none.
    assert len([r for r in requests if r["path"] == "/token"]) == 2
    exchanges = [r["scope"] for r in requests if r["path"] == "/authentication/api/v1/exchange/maskinporten"]
    assert sorted(exchanges) == [READ_SCOPE, SUBSCRIBE_SCOPE]
