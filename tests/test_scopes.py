"""The scope set per family of Altinn calls (receiver/scopes.py), and the config refusing a role whose client lacks
a scope the role needs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from receiver.config import ROLES, ConfigError, parse_config
from receiver.scopes import (
    EVENTS,
    NEEDED,
    READ_SCOPE,
    RECIPIENT,
    SENDER,
    SERVICE_OWNER_SCOPE,
    SUBSCRIBE_SCOPE,
    WRITE_SCOPE,
    MissingScope,
    scope_sets,
)

EVERY_SCOPE = (READ_SCOPE, WRITE_SCOPE, SUBSCRIBE_SCOPE, SERVICE_OWNER_SCOPE)


def test_every_role_the_config_accepts_has_its_needs_listed() -> None:
    assert set(ROLES) == set(NEEDED)


@pytest.mark.parametrize(
    ("role", "configured", "expected"),
    [
        # Altinn counts a token with the write scope as the sender's (correspondence contract §7.1): a recipient's
        # own calls carry read alone, whatever else its client holds; its write scope is for `send` only.
        ("recipient", (READ_SCOPE, SUBSCRIBE_SCOPE), {RECIPIENT: (READ_SCOPE,), EVENTS: (SUBSCRIBE_SCOPE,)}),
        ("recipient", EVERY_SCOPE,
         {RECIPIENT: (READ_SCOPE,), EVENTS: (SUBSCRIBE_SCOPE,), SENDER: (WRITE_SCOPE,)}),
        # An Altinn token needs only the write scope for the Sender policy; Events wants altinn:serviceowner too.
        ("service-owner", EVERY_SCOPE, {SENDER: (WRITE_SCOPE,), EVENTS: (SUBSCRIBE_SCOPE, SERVICE_OWNER_SCOPE)}),
    ],
)  # fmt: skip
def test_each_purpose_gets_only_the_scopes_its_policy_asks_for(
    role: str, configured: tuple[str, ...], expected: dict[str, tuple[str, ...]]
) -> None:
    assert scope_sets(role, configured) == expected


@pytest.mark.parametrize(
    ("role", "configured", "missing", "purpose"),
    [
        ("recipient", (SUBSCRIBE_SCOPE, WRITE_SCOPE), READ_SCOPE, RECIPIENT),
        ("recipient", (READ_SCOPE,), SUBSCRIBE_SCOPE, EVENTS),
        ("service-owner", (READ_SCOPE, SUBSCRIBE_SCOPE, SERVICE_OWNER_SCOPE), WRITE_SCOPE, SENDER),
        ("service-owner", (WRITE_SCOPE, SUBSCRIBE_SCOPE), SERVICE_OWNER_SCOPE, EVENTS),
    ],
)
def test_a_missing_scope_is_named_with_what_needs_it(
    role: str, configured: tuple[str, ...], missing: str, purpose: str
) -> None:
    with pytest.raises(MissingScope) as caught:
        scope_sets(role, configured)
    assert (caught.value.scope, caught.value.purpose) == (missing, purpose)
    assert str(caught.value).startswith(f"lacks {missing}, which [altinn] role = {role!r} needs for ")


def config_text(tmp_path: Path, role: str, scopes: list[str], client_id: str = "client") -> str:
    key = tmp_path / "k.pem"
    key.write_text("not read when parsing")
    return (
        "[receiver]\nallow_no_secret = true\n"
        f'[altinn]\nenvironment = "tt02"\nrole = "{role}"\n'
        f'[maskinporten]\nclient_id = "{client_id}"\nprivate_key_file = "{key}"\nscopes = {scopes!r}\n'
    ).replace("'", '"')


def test_the_config_refuses_a_role_without_the_scopes_it_needs(tmp_path: Path) -> None:
    text = config_text(tmp_path, "service-owner", [READ_SCOPE, SUBSCRIBE_SCOPE])
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(text), {})
    assert caught.value.key == "maskinporten.scopes"
    assert caught.value.problem.startswith(f"lacks {WRITE_SCOPE}, which [altinn] role = 'service-owner' needs")


def test_without_a_maskinporten_client_the_scopes_are_not_checked(tmp_path: Path) -> None:
    config = parse_config(tomllib.loads(config_text(tmp_path, "service-owner", [], client_id="")), {})
    assert config.maskinporten.scopes == ()
