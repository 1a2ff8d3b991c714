"""The Altinn clients against the project's simulator: a system-user grant, reading and downloading what was sent,
the simulator's fault injection surfacing as the error family, the one retry after a refused token (and none after
Altinn's "no access"), and one token per scope set: each family of calls carries only the scopes it needs."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from altinn_sim import RunningSimulator, SimSettings
from receiver.altinn import AltinnClients, PermanentError, TransientError
from receiver.onboarding.sending import initialize_body, initialized
from tests.altinn_support import SERVICE_OWNER, call, new_key, simulator_with_client

KEY = new_key()
T = TypeVar("T")
READ, WRITE = "altinn:correspondence.read", "altinn:correspondence.write"
SUBSCRIBE, SERVICE_OWNER_SCOPE = "altinn:events.subscribe", "altinn:serviceowner"
SCOPES = [SUBSCRIBE, READ]
RECIPIENT = "310000000"
SUBSCRIPTIONS = "/events/api/v1/subscriptions"
EVENTS = "/events/api/v1/events"
EXCHANGE = "/authentication/api/v1/exchange/maskinporten"
CORRESPONDENCE = "/correspondence/api/v1/correspondence"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    # The client holds every scope; each test's config says which it lists, and its role.
    scopes = [*SCOPES, WRITE, SERVICE_OWNER_SCOPE]
    with simulator_with_client(KEY, scopes, "991825827", SimSettings(time_scale=1000)) as simulator:
        yield simulator


@contextmanager
def logged(sim: RunningSimulator) -> Iterator[list[dict[str, Any]]]:
    """Yields the simulator's log of the requests made inside (filled in on leaving)."""
    before = len(sim.state_snapshot()["requests"])
    sent: list[dict[str, Any]] = []
    yield sent
    sent.extend(sim.state_snapshot()["requests"][before:])


def scopes_by_call(sent: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    """(method, the path up to the correspondence id, the bearer token's scope) of each platform API call."""
    return {
        (e["method"], "/".join(e["path"].partition("?")[0].split("/")[:6]), e["scope"])
        for e in sent
        if e["path"] != "/token" and not e["path"].startswith(EXCHANGE)
    }


def exchanges_by_scope(sent: list[dict[str, Any]]) -> Counter[str]:
    """How many exchanges there were for each scope set (the scope of the Maskinporten token exchanged)."""
    return Counter(str(e["scope"]) for e in sent if e["path"] == EXCHANGE)


def grants(sent: list[dict[str, Any]]) -> int:
    return len([e for e in sent if (e["method"], e["path"]) == ("POST", "/token")])


def as_system_user(sim: RunningSimulator, tmp_path: Path, work: Callable[[AltinnClients], Awaitable[T]]) -> T:
    """`work` with the clients of a system user acting for RECIPIENT."""
    return call(sim, tmp_path, KEY, work, scopes=SCOPES, extra_maskinporten=f'system_user_org = "0192:{RECIPIENT}"')


def test_system_user_token_reads_and_downloads_what_was_sent_to_the_org(tmp_path: Path, sim: RunningSimulator) -> None:
    correspondence_id = sim.send_correspondence("sim-resource", RECIPIENT, title="Vedtak", attachments=1)

    async def work(c: AltinnClients) -> tuple[dict[str, object], list[str], int, str]:
        token = await c.tokens.altinn()
        details = await c.correspondence.details(correspondence_id)
        ids = await c.correspondence.list_ids("urn:altinn:resource:sim-resource", role="Recipient")
        attachment = details.attachments[0]
        size = await c.correspondence.download_attachment(
            correspondence_id, attachment.id, tmp_path / "a.bin", checksum=attachment.checksum
        )
        return token.claims, ids, size, attachment.checksum or ""

    claims, ids, size, checksum = as_system_user(sim, tmp_path, work)
    assert claims["authorization_details"][0]["systemuser_org"]["ID"] == f"0192:{RECIPIENT}"  # type: ignore[index]
    assert correspondence_id in ids
    data = (tmp_path / "a.bin").read_bytes()
    assert size == len(data) > 0
    assert hashlib.md5(data).hexdigest() == checksum.lower()


def test_simulated_429_surfaces_retry_after(tmp_path: Path, sim: RunningSimulator) -> None:
    rule = {"path": "/events/api/v1/subscriptions", "method": "GET", "error_rate": 1.0, "error_status": 429,
            "retry_after": "3s"}  # fmt: skip
    sim.admin.put("/faults", json=rule).raise_for_status()
    try:
        with pytest.raises(TransientError) as err:
            as_system_user(sim, tmp_path, lambda c: c.events.list_subscriptions())
    finally:
        sim.admin.delete("/faults").raise_for_status()
    assert err.value.status == 429
    assert err.value.retry_after == 3.0


@contextmanager
def subscriptions_refusing_tokens(sim: RunningSimulator, times: int) -> Iterator[list[dict[str, Any]]]:
    """Listing subscriptions answers 401 `times` times; yields the simulator's log of the requests made inside."""
    before = len(sim.state_snapshot()["requests"])
    rule = {"path": SUBSCRIPTIONS, "method": "GET", "error_rate": 1.0, "error_status": 401, "count": times}
    sim.admin.put("/faults", json=rule).raise_for_status()
    sent: list[dict[str, Any]] = []
    try:
        yield sent
    finally:
        sim.admin.delete("/faults").raise_for_status()
        sent.extend(sim.state_snapshot()["requests"][before:])


def list_with_a_subscription_key(sim: RunningSimulator, tmp_path: Path) -> object:
    extra = 'subscription_key = "apim-key"'
    return call(sim, tmp_path, KEY, lambda c: c.events.list_subscriptions(), scopes=SCOPES, extra_altinn=extra)


def test_a_401_costs_one_fresh_altinn_token_and_one_retry(tmp_path: Path, sim: RunningSimulator) -> None:
    with subscriptions_refusing_tokens(sim, times=1) as sent:
        assert isinstance(list_with_a_subscription_key(sim, tmp_path), list)
    assert [(entry["method"], entry["path"], entry["status"]) for entry in sent] == [
        ("POST", "/token", 200),
        ("GET", EXCHANGE, 200),
        ("GET", SUBSCRIPTIONS, 401),
        ("GET", EXCHANGE, 200),  # the refused token is dropped; the Maskinporten token is still good
        ("GET", SUBSCRIPTIONS, 200),
    ]
    platform = [entry["headers"] for entry in sent if entry["path"] != "/token"]
    assert all(headers["authorization"] and headers["ocp-apim-subscription-key"] for headers in platform)


def test_a_second_401_is_permanent_after_exactly_one_retry(tmp_path: Path, sim: RunningSimulator) -> None:
    with subscriptions_refusing_tokens(sim, times=2) as sent, pytest.raises(PermanentError) as err:
        list_with_a_subscription_key(sim, tmp_path)
    assert err.value.status == 401
    assert "the token was refused" in str(err.value)
    assert [entry["path"] for entry in sent if entry["path"] in (SUBSCRIPTIONS, EXCHANGE)] == [
        EXCHANGE,
        SUBSCRIPTIONS,
        EXCHANGE,
        SUBSCRIPTIONS,
    ]


def test_a_recipient_whose_client_also_holds_write_calls_with_read_alone(tmp_path: Path, sim: RunningSimulator) -> None:
    # Altinn counts a caller whose token carries the write scope as the sender: as such it never records Fetched,
    # so markasread and confirm would fail for ever (correspondence contract §7.1).
    correspondence_id = sim.send_correspondence("sim-resource", RECIPIENT, attachments=1, is_confirmation_needed=True)

    async def work(c: AltinnClients) -> None:
        details = await c.correspondence.details(correspondence_id)
        await c.correspondence.download_attachment(correspondence_id, details.attachments[0].id, tmp_path / "a.bin")
        await c.correspondence.mark_as_read(correspondence_id)
        await c.correspondence.confirm(correspondence_id)
        await c.correspondence.list_ids("sim-resource", role="Recipient")
        await c.events.pull_events("urn:altinn:resource:sim-resource", "0")
        await c.events.list_subscriptions()

    with logged(sim) as sent:
        call(sim, tmp_path, KEY, work, scopes=[*SCOPES, WRITE], extra_maskinporten=f'system_user_org = "{RECIPIENT}"')
    assert scopes_by_call(sent) == {
        ("GET", CORRESPONDENCE + "/" + correspondence_id, READ),  # details and the download
        ("POST", CORRESPONDENCE + "/" + correspondence_id, READ),  # markasread and confirm
        ("GET", CORRESPONDENCE, READ),
        ("GET", EVENTS, SUBSCRIBE),
        ("GET", SUBSCRIPTIONS, SUBSCRIBE),
    }
    assert all(e["status"] == 200 for e in sent), sent
    # one grant and one exchange per scope set, however many calls use it; none for the write scope
    assert grants(sent) == 2
    assert exchanges_by_scope(sent) == {READ: 1, SUBSCRIBE: 1}


def test_a_service_owner_sends_and_reads_with_write_and_calls_events_as_service_owner(
    tmp_path: Path, sim: RunningSimulator
) -> None:
    resource = "owner-scopes-resource"
    body = initialize_body(resource_id=resource, recipient=f"urn:altinn:organization:identifier-no:{RECIPIENT}",
                           title="Vedtak", body="Vedtak")  # fmt: skip

    async def work(c: AltinnClients) -> None:
        correspondence_id, _, _ = initialized(await c.correspondence.initialize(body))
        await c.correspondence.overview(correspondence_id)
        await c.events.pull_events(f"urn:altinn:resource:{resource}", "0")
        await c.events.list_subscriptions()

    with logged(sim) as sent:
        call(sim, tmp_path, KEY, work, **SERVICE_OWNER)
    as_owner = f"{SUBSCRIBE} {SERVICE_OWNER_SCOPE}"
    assert {(method, path[: len(CORRESPONDENCE)], scope) for method, path, scope in scopes_by_call(sent)} == {
        ("POST", CORRESPONDENCE, WRITE),
        ("GET", CORRESPONDENCE, WRITE),
        ("GET", EVENTS, as_owner),
        ("GET", SUBSCRIPTIONS, as_owner),
    }
    assert all(e["status"] == 200 for e in sent), sent
    assert grants(sent) == 2
    assert exchanges_by_scope(sent) == {WRITE: 1, as_owner: 1}


def test_no_access_is_permanent_says_so_and_costs_no_new_token(tmp_path: Path, sim: RunningSimulator) -> None:
    correspondence_id = sim.send_correspondence("sim-resource", RECIPIENT)
    details = f"{CORRESPONDENCE}/{correspondence_id}/details"
    # Once only: a retry would be answered 200, and the call would succeed.
    rule = {"path": details, "method": "GET", "error_rate": 1.0, "error_status": 401, "error_code": 4001, "count": 1}
    sim.admin.put("/faults", json=rule).raise_for_status()
    try:
        with logged(sim) as sent, pytest.raises(PermanentError) as err:
            as_system_user(sim, tmp_path, lambda c: c.correspondence.details(correspondence_id))
    finally:
        sim.admin.delete("/faults").raise_for_status()
    message = str(err.value)
    assert message.startswith("the organisation has no access to this correspondence under the resource's policy")
    assert "errorCode 4001" in message and f"reading correspondence {correspondence_id}: HTTP 401" in message
    assert "the token was refused" not in message
    assert (err.value.status, err.value.error_code) == (401, 4001)
    assert [(e["method"], e["path"], e["status"]) for e in sent] == [
        ("POST", "/token", 200),
        ("GET", EXCHANGE, 200),
        ("GET", details, 401),
    ]
