"""Resources in the resource registry, as far as the simulator needs them: who owns each (the service owner)."""

from __future__ import annotations

RESOURCE_PREFIX = "urn:altinn:resource:"
ORG_SUBJECT_PREFIX = "urn:altinn:organization:identifier-no:"


def resource_urn(resource_id: str) -> str:
    return RESOURCE_PREFIX + resource_id


def org_subject(orgnr: str) -> str:
    return ORG_SUBJECT_PREFIX + orgnr


class Resources:
    """Resource id (without the urn prefix) -> the organisation number of its service owner.

    A resource comes into being when a service owner first uses it (sends on it or subscribes to it), or
    when the seed data or the admin API names its owner.
    """

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}
        self.confidential: set[str] = set()
        """Resources whose policy asks for the access package post-til-virksomheten-med-taushetsbelagt-innhold."""

    def owner(self, resource_id: str) -> str | None:
        return self.owners.get(resource_id)

    def claim(self, resource_id: str, org: str) -> bool:
        """True if `org` owns the resource, making it the owner if nobody does yet."""
        return self.owners.setdefault(resource_id, org) == org
