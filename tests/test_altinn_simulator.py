"""The Altinn clients against the project's simulator: a system-user grant, reading and downloading what was sent,
the simulator's fault injection surfacing as the error family, and the one retry after a refused token."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from altinn_sim import RunningSimulator, SimSettings
from receiver.altinn import AltinnClients, PermanentError, TransientError
from tests.altinn_support import call, new_key, simulator_with_client

KEY = new_key()
T = TypeVar("T")
SCOPES = ["altinn:events.subscribe", "altinn:correspondence.read"]
RECIPIENT = "310000000"
SUBSCRIPTIONS = "/events/api/v1/subscriptions"
EXCHANGE = "/authentication/api/v1/exchange/maskinporten"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with simulator_with_client(KEY, SCOPES, "991825827", SimSettings(time_scale=1000)) as simulator:
        yield simulator


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
