"""The admin API: registering clients by PEM or certificate, sending correspondences, raw events."""

from __future__ import annotations

import base64
import datetime
import uuid
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from altinn_sim.testing import TestClient

ORG = "312345678"


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=3)) as running:
        yield running


def test_client_registered_by_pem_gets_tokens(sim: RunningSimulator) -> None:
    client = TestClient(sim, "pem-client", ORG, ["altinn:correspondence.read"])
    pem = (
        client.key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    sim.register_client(client.client_id, pem=pem, kid=client.kid, scopes=client.scopes, org=ORG)
    assert client.grant(client.assertion()).status_code == 200


def test_client_registered_by_certificate_signs_with_x5c(sim: RunningSimulator) -> None:
    client = TestClient(sim, "cert-client", ORG, ["altinn:correspondence.read"])
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Testbedrift AS")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(client.key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(client.key, hashes.SHA256())
    )  # fmt: skip
    sim.register_client(
        client.client_id,
        pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        scopes=client.scopes,
        org=ORG,
    )
    x5c = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]
    assert client.grant(client.assertion(headers={"x5c": x5c})).status_code == 200
    both = client.grant(client.assertion(headers={"x5c": x5c, "kid": "k"}))
    assert both.status_code == 400


def test_bad_client_registrations_are_refused(sim: RunningSimulator) -> None:
    assert sim.admin.post("/clients", json={"client_id": "x", "org": ORG, "scopes": []}).status_code == 400
    assert sim.admin.post("/clients", json={"client_id": "x", "org": "12", "pem": "nope"}).status_code == 400


def test_correspondences_events_and_state(sim: RunningSimulator) -> None:
    response = sim.admin.post(
        "/correspondences",
        json=[
            {"resource_id": "sim-admin-resource", "recipient": ORG, "attachments": 2},
            {"resource_id": "sim-admin-resource", "recipient": "12345678901"},
        ],
    )
    assert response.status_code == 201
    ids = response.json()["ids"]
    state = sim.state_snapshot()
    stored = {c["id"]: c for c in state["correspondences"]}
    assert stored[ids[0]]["attachments"] == 2 and stored[ids[0]]["status"] == "Published"
    assert stored[ids[1]]["recipient"] == "urn:altinn:person:identifier-no:12345678901"
    assert len(state["correspondences"]) == 5
    read = sim.admin.post(f"/correspondences/{ids[0]}/read")
    assert read.json()["status"] == "Read"
    assert sim.admin.post(f"/correspondences/{ids[0]}/read").json()["errorCode"] == 1040
    assert sim.admin.post(f"/correspondences/{uuid.uuid4()}/confirm").status_code == 404
    assert sim.admin.post("/correspondences", json={"recipient": ORG}).status_code == 400
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "type": "t", "source": "https://x.example/",
             "resource": "urn:altinn:resource:sim-admin-resource"}  # fmt: skip
    sim.publish_event(event, push=False)
    assert sim.state_snapshot()["events"][-1]["id"] == event["id"]
    assert sim.admin.post("/events", json={"id": "no-resource"}).status_code == 400
