"""The receiver owns its subscriptions: registered at startup with the same body every time, polled until validated,
posted again while Altinn has not validated them, and shown in /readyz's body and /metrics."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from receiver.config import SubscriptionConfig, load_config
from receiver.onboarding.demo import ReceiverServer, ReceiverSetup, register_identity
from receiver.server_thread import free_port
from tests.support import wait_until


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    # 10000x: Altinn's validation retries (about 8 minutes) take about 50 ms.
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as running:
        yield running


def fresh_resource() -> str:
    return f"urn:altinn:resource:sub-test-{uuid.uuid4().hex[:10]}"


def setup_for(sim: RunningSimulator, tmp_path: Path, resource: str, **options: Any) -> ReceiverSetup:
    return ReceiverSetup(
        sim.url,
        register_identity(sim, tmp_path),
        tmp_path / "receiver.db",
        [SubscriptionConfig(resource)],
        catchup={"enabled": False, "interval": "1s"},
        **options,
    )


def at_altinn(sim: RunningSimulator, resource: str) -> list[dict[str, Any]]:
    return [s for s in sim.state_snapshot()["subscriptions"] if s.get("resourceFilter") == resource]


def validation_pushes(sim: RunningSimulator, subscription_id: int) -> list[dict[str, Any]]:
    deliveries = sim.state_snapshot()["deliveries"]
    return [d for d in deliveries if d["kind"] == "validation" and d["subscription_id"] == subscription_id]


def readyz(receiver: ReceiverServer) -> httpx.Response:
    return httpx.get(receiver.url + "/readyz", timeout=10)


def subscriptions_status(receiver: ReceiverServer) -> dict[str, Any]:
    status: dict[str, Any] = readyz(receiver).json()["services"]["subscriptions"]
    return status


def test_three_restarts_leave_one_validated_subscription_at_altinn(sim: RunningSimulator, tmp_path: Path) -> None:
    resource = fresh_resource()
    setup = setup_for(sim, tmp_path, resource)
    config = setup.write(tmp_path / "receiver.toml")
    for _ in range(3):
        with ReceiverServer(config) as receiver:
            receiver.wait_started()
            wait_until(lambda: subscriptions_status(receiver)["state"] == "validated", message="validated")
    [subscription] = at_altinn(sim, resource)
    assert subscription["validated"] is True
    assert subscription["endPoint"] == setup.public_url + "?code=***"
    # Every start POSTed the identical body: Altinn answered with the same id and sent a new handshake each time.
    assert len(validation_pushes(sim, subscription["id"])) == 3
    assert subscription.get("subjectFilter") is None and subscription.get("typeFilter") is None


def test_an_unvalidated_subscription_shows_in_readyz_and_is_posted_again(sim: RunningSimulator, tmp_path: Path) -> None:
    resource = fresh_resource()
    # Altinn pushes to /misrouted, where the receiver answers 404: the handshake can never succeed.
    config = setup_for(sim, tmp_path, resource, public_path="/misrouted").write(tmp_path / "receiver.toml")
    with ReceiverServer(config) as receiver:
        receiver.wait_started()
        [subscription] = wait_until(lambda: at_altinn(sim, resource), message="the subscription at Altinn")
        # Posted again every [catchup] interval (1s): each POST is a new validation handshake.
        wait_until(lambda: len(validation_pushes(sim, subscription["id"])) >= 2, timeout=15, message="a second POST")
        response = readyz(receiver)
        assert response.status_code == 200
        status = response.json()["services"]["subscriptions"]
        assert status["state"] == "unvalidated"
        [shown] = status["subscriptions"]
        assert shown["id"] == subscription["id"] and shown["validated"] is False
        assert shown["endpoint"].endswith("/misrouted?code=***")
        metrics = httpx.get(receiver.url + "/metrics").text
        assert f'altinn_receiver_subscription_validated{{resource="{resource}",subject="",type=""}} 0.0' in metrics
    assert at_altinn(sim, resource)[0]["validated"] is False


def test_the_code_never_reaches_readyz_metrics_or_the_store(sim: RunningSimulator, tmp_path: Path) -> None:
    resource = fresh_resource()
    setup = setup_for(sim, tmp_path, resource)
    config = setup.write(tmp_path / "receiver.toml")
    with ReceiverServer(config) as receiver:
        receiver.wait_started()
        wait_until(lambda: subscriptions_status(receiver)["state"] == "validated", message="validated")
        outputs = readyz(receiver).text + httpx.get(receiver.url + "/metrics").text
    assert setup.secret not in outputs
    assert setup.secret.encode() not in (tmp_path / "receiver.db").read_bytes()


def test_one_receiver_makes_one_maskinporten_grant_per_scope_set_for_all_its_services(tmp_path: Path) -> None:
    # A simulator of its own: its request log then holds this receiver's calls only.
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as own:
        resource = fresh_resource()
        setup = ReceiverSetup(own.url, register_identity(own, tmp_path), tmp_path / "receiver.db",
                              [SubscriptionConfig(resource)], catchup={"interval": "200ms"})  # fmt: skip
        with ReceiverServer(setup.write(tmp_path / "receiver.toml")) as receiver:
            receiver.wait_started()
            wait_until(lambda: subscriptions_status(receiver)["state"] == "validated", message="validated")
            own.send_correspondence(resource, "312345678", notify=False)  # initialized + published: both fetched
            wait_until(lambda: done(setup.store) == 2, message="both events fetched and stored")
            wait_until(lambda: readyz(receiver).json()["services"]["catchup"]["runs"] >= 2, message="catch-up again")
        requests = own.state_snapshot()["requests"]
    # A service owner uses two scope sets (receiver/scopes.py): the Events calls' and the sender's. Each costs one
    # grant and one exchange, however many services and calls share it.
    events_scopes, sender_scopes = "altinn:events.subscribe altinn:serviceowner", "altinn:correspondence.write"
    assert len([r for r in requests if (r["method"], r["path"]) == ("POST", "/token")]) == 2
    exchanged = [r["scope"] for r in requests if r["path"].startswith("/authentication/api/v1/exchange/")]
    assert sorted(exchanged) == [sender_scopes, events_scopes]
    # ...while every service called Altinn with its set's token: subscriptions, catch-up's pull, the dispatcher's fetch.
    called = {(r["method"], r["path"].partition("?")[0], r["scope"]) for r in requests if r["headers"]["authorization"]}
    assert ("POST", "/events/api/v1/subscriptions", events_scopes) in called
    assert ("GET", "/events/api/v1/events", events_scopes) in called
    fetched = {scope for method, path, scope in called if path.startswith("/correspondence/api/v1/correspondence/")}
    assert fetched == {sender_scopes}


def done(store: Path) -> int:
    with sqlite3.connect(store) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM inbox WHERE status = 'done'").fetchone()[0])


def test_without_altinn_config_pushes_are_accepted_and_readyz_says_what_is_missing(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "receiver.toml").write_text(
        f'[receiver]\nhost = "127.0.0.1"\nport = {port}\nsecret = "s3cret-code-of-16+chars"\n'
        f'public_url = "http://127.0.0.1:{port}/events"\n[store]\npath = "{tmp_path / "receiver.db"}"\n'
        f'[[subscriptions]]\nresource = "{fresh_resource()}"\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path / "receiver.toml", environ=os.environ)
    with ReceiverServer(config) as receiver:
        receiver.wait_started()
        assert receiver.runtime.altinn is None
        response = readyz(receiver)
    assert response.status_code == 200
    services = response.json()["services"]
    for name in ("subscriptions", "catchup"):
        assert services[name]["start_error"].startswith("ConfigError: altinn.environment: is required to call Altinn")
    assert "start_error" not in services["dispatcher"]  # store-only pipelines need no Altinn
