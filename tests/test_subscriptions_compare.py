"""Deciding which Altinn subscriptions are ours, wanted, superseded by a new code, or left to `prune`."""

from __future__ import annotations

from typing import Any

from receiver.altinn import Subscription
from receiver.config import ReceiverConfig, SubscriptionConfig
from receiver.sync.subscriptions import (
    code_standing,
    compare,
    due_for_deletion,
    endpoint_url,
    fingerprint,
    public_url_warning,
    without_query,
)

RESOURCE = "urn:altinn:resource:demo-resource"
OTHER = "urn:altinn:resource:other-resource"
PUBLIC = "https://receiver.example.no/events"
RECEIVER = ReceiverConfig(secret="new code/+", previous_secrets=("old-code",), public_url=PUBLIC)


def altinn(sub_id: int, endpoint: str, resource: str = RESOURCE, validated: bool = True, **extra: Any) -> Subscription:
    body = {"id": sub_id, "endPoint": endpoint, "resourceFilter": resource, "validated": validated, **extra}
    return Subscription.from_json(body)


def test_endpoint_appends_the_url_encoded_code_the_same_way_every_time() -> None:
    assert endpoint_url(RECEIVER) == PUBLIC + "?code=new%20code%2F%2B"
    assert endpoint_url(RECEIVER) == endpoint_url(RECEIVER)
    assert endpoint_url(ReceiverConfig(allow_no_secret=True, public_url=PUBLIC)) == PUBLIC


def test_our_endpoint_is_recognised_without_its_query_and_as_dotnet_normalises_it() -> None:
    assert without_query("HTTPS://Receiver.Example.no:443/events?code=x") == PUBLIC
    assert without_query("https://receiver.example.no") == "https://receiver.example.no/"
    assert without_query("https://receiver.example.no:8443/events?code=x") == "https://receiver.example.no:8443/events"


def test_code_standing_tells_current_previous_and_unknown_codes_apart() -> None:
    assert code_standing(endpoint_url(RECEIVER), RECEIVER) == "current"
    assert code_standing(PUBLIC + "?code=old-code", RECEIVER) == "previous"
    assert code_standing(PUBLIC + "?code=guess", RECEIVER) == "unknown"


def test_fingerprint_names_a_code_without_revealing_it() -> None:
    assert fingerprint("old-code") == fingerprint("old-code") != fingerprint("new code/+")
    assert "old-code" not in fingerprint("old-code")
    assert fingerprint("") == ""


def test_a_plain_http_public_url_is_warned_about_unless_on_loopback() -> None:
    assert public_url_warning("https://x.example/events") is None
    assert public_url_warning("http://127.0.0.1:8080/events") is None
    assert public_url_warning("http://localhost/events") is None
    warning = public_url_warning("http://receiver.example.no/events")
    assert warning is not None and "https" in warning


def test_compare_sorts_subscriptions_into_roles_and_redacts_every_code() -> None:
    wanted = [SubscriptionConfig(RESOURCE), SubscriptionConfig(RESOURCE, subject="urn:altinn:organization:1")]
    existing = [
        altinn(1, PUBLIC + "?code=old-code"),
        altinn(2, endpoint_url(RECEIVER)),
        altinn(3, endpoint_url(RECEIVER), resource=OTHER),
        altinn(4, "https://someone-else.example/hook?code=theirs"),
        altinn(5, endpoint_url(RECEIVER), includeSubunits=True, subjectFilter="urn:altinn:organization:1"),
    ]
    views = compare(wanted, existing, RECEIVER, {2: "2026-01-01T00:00:00.000000Z"})
    roles = {(v.id, v.role) for v in views}
    assert roles == {(1, "superseded"), (2, "current"), (3, "unwanted"), (4, "other-endpoint"), (5, "unwanted"),
                     (None, "missing")}  # fmt: skip
    missing = next(v for v in views if v.role == "missing")
    assert missing.key == wanted[1]
    for view in views:
        assert "old-code" not in view.endpoint and "new" not in view.endpoint and "theirs" not in view.endpoint
    assert next(v for v in views if v.id == 1).endpoint == PUBLIC + "?code=***"


def test_an_old_code_subscription_is_due_an_hour_after_its_successor_was_first_seen_validated() -> None:
    existing = [altinn(1, PUBLIC + "?code=old-code"), altinn(2, endpoint_url(RECEIVER))]
    views = compare([SubscriptionConfig(RESOURCE)], existing, RECEIVER, {2: "2026-01-01T10:00:00.000000Z"})
    old = next(v for v in views if v.id == 1)
    assert old.delete_after == "2026-01-01T11:00:00.000000Z"
    assert due_for_deletion(views, at="2026-01-01T10:59:59.000000Z") == []
    assert [v.id for v in due_for_deletion(views, at="2026-01-01T11:00:00.000000Z")] == [1]


def test_an_old_code_subscription_stays_while_its_successor_is_unvalidated() -> None:
    existing = [altinn(1, PUBLIC + "?code=old-code"), altinn(2, endpoint_url(RECEIVER), validated=False)]
    views = compare([SubscriptionConfig(RESOURCE)], existing, RECEIVER, {})
    old = next(v for v in views if v.id == 1)
    assert old.role == "superseded" and old.delete_after == ""
    assert due_for_deletion(views, at="2999-01-01T00:00:00.000000Z") == []
