"""The commented `receiver.toml` and the `receiver.env` that `init` writes for an agency."""

from __future__ import annotations

import json
import secrets

from receiver.config import MASKINPORTEN_ISSUERS, PLATFORM_URLS
from receiver.onboarding.agency import Agency

SECRET_VARIABLE = "ALTINN_RECEIVER_SECRET"
KEY_FILE = "maskinporten.pem"
JWK_FILE = "maskinporten.jwk.json"
CONFIG_FILE = "receiver.toml"
ENV_FILE = "receiver.env"
POLICY_FILE = "policy.xml"
STORE_FILE = "receiver.db"


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's string escapes are valid TOML)."""
    return json.dumps(value)


def _optional(key: str, value: str, hint: str) -> str:
    """`key = "value"`, or the key commented out with what to put there when the value is not known yet."""
    return f"{key} = {toml_string(value)}" if value else f"# {key} = {hint}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def receiver_env(secret: str) -> str:
    return (
        "# Secrets for altinn-receiver (keep this file private: mode 0600, out of version control).\n"
        "# Load it with systemd's EnvironmentFile=, docker --env-file, or `set -a; . ./receiver.env; set +a`.\n"
        f"# {SECRET_VARIABLE} is the code Altinn sends as ?code= on every push; receiver.toml reads it.\n"
        f"{SECRET_VARIABLE}={secret}\n"
    )


def _altinn_section(agency: Agency) -> str:
    lines = [
        "[altinn]",
        f"# {agency.environment_name}",
        f"environment = {toml_string(agency.environment)}",
    ]
    if agency.platform_url and agency.platform_url.rstrip("/") != PLATFORM_URLS[agency.environment]:
        lines += ["# Another Altinn platform than the environment's (for example the simulator).",
                  f"platform_url = {toml_string(agency.platform)}"]  # fmt: skip
    lines += [
        f"role = {toml_string(agency.role)}",
        "# Ocp-Apim-Subscription-Key: Altinn no longer requires it. Set it only if Altinn's service desk gave you one.",
        '# subscription_key = "${ALTINN_SUBSCRIPTION_KEY}"',
    ]
    return "\n".join(lines)


def _maskinporten_section(agency: Agency) -> str:
    scopes = ", ".join(toml_string(scope) for scope in agency.scopes)
    lines = [
        "[maskinporten]",
        "# Step 4: the id Digdir's self-service shows for the Maskinporten client holding maskinporten.jwk.json.",
        _optional("client_id", agency.client_id, '"<client id from the self-service>"'),
    ]
    if agency.issuer and agency.issuer != MASKINPORTEN_ISSUERS[agency.environment]:
        lines += ["# Another Maskinporten than the environment's (for example the simulator).",
                  f"issuer = {toml_string(agency.issuer)}"]  # fmt: skip
    lines += [
        "# The key init generated; its public half (maskinporten.jwk.json) carries the same kid.",
        f"kid = {toml_string(agency.kid)}",
        f"private_key_file = {toml_string(KEY_FILE)}",
        f"scopes = [{scopes}]",
    ]
    if not agency.is_service_owner:
        lines += [
            "# A vendor's system acting for a customer organisation asks for a system-user token: uncomment this with",
            "# the customer's organisation number once the customer has approved the system user in Altinn.",
            f"# system_user_org = {toml_string(agency.org)}",
        ]
    return "\n".join(lines)


def _subscription_section(agency: Agency) -> str:
    if agency.is_service_owner:
        who = ["# As service owner: no subject, so every status event of what you send on the resource arrives."]
        subject: list[str] = []
    else:
        who = ["# As recipient: only the events whose subject is your organisation."]
        subject = [f"subject = {toml_string(agency.org_urn)}"]
    return "\n".join(
        [
            "# Step 7: the subscription `serve` creates (and keeps) in Altinn Events at startup.",
            *who,
            "[[subscriptions]]",
            f"resource = {toml_string(agency.resource_urn)}",
            *subject,
        ]
    )


def receiver_toml(agency: Agency) -> str:
    """The config for `agency`: loads with `receiver.config.load_config` once receiver.env is in the environment."""
    receiver = "\n".join(
        [
            "[receiver]",
            "# Where the webhook listens. Put it behind an HTTPS reverse proxy with a publicly trusted certificate:",
            "# Altinn pushes only to https:// and rejects self-signed certificates.",
            'host = "127.0.0.1"',
            "port = 8080",
            'path = "/events"',
            f'secret = "${{{SECRET_VARIABLE}}}"',
            "# The public https URL of `path` as Altinn reaches it; subscriptions point there (plus ?code=).",
            _optional("public_url", agency.public_url, '"https://receiver.example.no/events"'),
        ]
    )
    store = "\n".join(
        [
            "[store]",
            "# Every received event is durable here before Altinn gets its 200.",
            f"path = {toml_string(STORE_FILE)}",
        ]
    )
    header = (
        f"# altinn-receiver for organisation {agency.org} as {agency.role}, resource {agency.resource_id}.\n"
        "# Written by `altinn-receiver init`. docs/configuration.md describes each key; secrets live in receiver.env.\n"
        f"# Verify every onboarding step with: altinn-receiver check --config {CONFIG_FILE}"
    )
    sections = [
        header,
        receiver,
        store,
        _altinn_section(agency),
        _maskinporten_section(agency),
        _subscription_section(agency),
    ]
    return "\n\n".join(sections) + "\n"
