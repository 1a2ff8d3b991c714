"""Which scopes each family of Altinn calls asks Maskinporten for: one token per family, never every configured scope
in one token. Derived from `[altinn] role` and `[maskinporten] scopes` as Altinn's policies require.

Correspondence contract §1.1 (policies), events contract §1.5 (Events scopes), correspondence contract §7.1:

- `recipient` — overview, details, attachment download, markasread, confirm, and the list as Recipient:
  `altinn:correspondence.read` alone. §1.1: "Recipient | ... Altinn token: ... scope must contain
  `altinn:correspondence.read`"; "DownloadAttachmentPolicy | ... must carry `altinn:correspondence.read` or
  `altinn:portal/enduser`". Alone, because §7.1: "A caller whose token carries `altinn:correspondence.write` counts
  as the sender ... `markasread` then answers 400 errorCode 1024 and `confirm` 1025, for ever."
- `sender` — initialize and upload, and the service owner reading what it sent (overview, details, the list as
  Sender): `altinn:correspondence.write`. §1.1: "Sender | ... Altinn token (iss contains "altinn"):
  `altinn:correspondence.write`. Maskinporten token: **both** `altinn:serviceowner` and `altinn:correspondence.write`."
  The receiver always sends an exchanged Altinn token, so `altinn:serviceowner` is not asked for here.
- `events` — subscriptions and the pull API: `altinn:events.subscribe`, plus `altinn:serviceowner` for a service owner.
  Events contract §1.5: "Obtain a Maskinporten ... token with the scopes `altinn:events.subscribe` (plus
  `altinn:serviceowner` if you are a service owner)"; without the latter a service owner is an ordinary organisation
  to Altinn Events (it must then filter on its own subject, and sees only its own events).

A service owner needs `sender` and `events`; a recipient `recipient` and `events`. A recipient whose client also
holds the write scope gets `sender` too, used only by `altinn-receiver send`; its recipient calls never carry it.
"""

from __future__ import annotations

from collections.abc import Iterable

READ_SCOPE = "altinn:correspondence.read"
WRITE_SCOPE = "altinn:correspondence.write"
SERVICE_OWNER_SCOPE = "altinn:serviceowner"
SUBSCRIBE_SCOPE = "altinn:events.subscribe"

RECIPIENT, SENDER, EVENTS = "recipient", "sender", "events"

PURPOSES = {
    RECIPIENT: "the recipient's Correspondence calls (overview, details, download, markasread, confirm, list)",
    SENDER: "the sender's Correspondence calls (initialize, upload, and reading what it sent)",
    EVENTS: "the Events calls (subscriptions, pulling events)",
}

# [altinn] role -> {purpose: scopes}: what the role cannot work without.
NEEDED: dict[str, dict[str, tuple[str, ...]]] = {
    "service-owner": {SENDER: (WRITE_SCOPE,), EVENTS: (SUBSCRIBE_SCOPE, SERVICE_OWNER_SCOPE)},
    "recipient": {RECIPIENT: (READ_SCOPE,), EVENTS: (SUBSCRIBE_SCOPE,)},
}
# [altinn] role -> {purpose: scopes}: sets a role gets only when its client holds every scope in them.
OPTIONAL: dict[str, dict[str, tuple[str, ...]]] = {
    "recipient": {SENDER: (WRITE_SCOPE,)},
}


class MissingScope(ValueError):
    """`[maskinporten] scopes` lacks `scope`, which `role` needs for `purpose`."""

    def __init__(self, role: str, purpose: str, scope: str) -> None:
        super().__init__(
            f"lacks {scope}, which [altinn] role = {role!r} needs for {PURPOSES[purpose]}: ask Altinn for it, add it "
            "to the Maskinporten client, then list it here (see docs/authentication.md)"
        )
        self.role = role
        self.purpose = purpose
        self.scope = scope


def scope_sets(role: str, configured: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """{purpose: scopes} for `role` (service-owner or recipient) given the client's `configured` scopes; MissingScope
    naming the first scope the role needs and the client lacks."""
    held = set(configured)
    sets: dict[str, tuple[str, ...]] = {}
    for purpose, scopes in NEEDED[role].items():
        missing = next((scope for scope in scopes if scope not in held), None)
        if missing is not None:
            raise MissingScope(role, purpose, missing)
        sets[purpose] = scopes
    for purpose, scopes in OPTIONAL.get(role, {}).items():
        if held.issuperset(scopes):
            sets[purpose] = scopes
    return sets


def correspondence_purpose(role: str) -> str:
    """The family of a role's own Correspondence reads and actions: a service owner reads what it sent as sender."""
    return RECIPIENT if role == "recipient" else SENDER
