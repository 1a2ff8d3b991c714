"""What one agency chose at `init`: every file and every step text is filled in from this."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from receiver.config import MASKINPORTEN_ISSUERS, PLATFORM_URLS, ConfigError, check_resource_urn, check_url

RESOURCE_PREFIX = "urn:altinn:resource:"
ORG_URN_PREFIX = "urn:altinn:organization:identifier-no:"
PERSON_URN_PREFIX = "urn:altinn:person:identifier-no:"
ENVIRONMENTS = ("tt02", "production")
SERVICE_OWNER, RECIPIENT = "service-owner", "recipient"
DEFAULT_ROLE_CODE = "DAGL"

# Correspondence contract §1.1 and events contract §1.5: what each role's Maskinporten client must hold.
SCOPES = {
    SERVICE_OWNER: ("altinn:correspondence.write", "altinn:correspondence.read", "altinn:events.subscribe",
                    "altinn:serviceowner"),
    RECIPIENT: ("altinn:correspondence.read", "altinn:events.subscribe"),
}  # fmt: skip
SELF_SERVICE = {
    "tt02": "https://sjolvbetjening.test.samarbeid.digdir.no/",
    "production": "https://sjolvbetjening.samarbeid.digdir.no/",
}


@dataclass(frozen=True)
class Agency:
    environment: str
    role: str
    resource_id: str
    org: str
    kid: str
    client_id: str = ""
    public_url: str = ""
    owner_code: str = ""
    role_code: str = DEFAULT_ROLE_CODE
    platform_url: str = ""
    issuer: str = ""

    @property
    def resource_urn(self) -> str:
        return RESOURCE_PREFIX + self.resource_id

    @property
    def org_urn(self) -> str:
        return ORG_URN_PREFIX + self.org

    @property
    def scopes(self) -> tuple[str, ...]:
        return SCOPES[self.role]

    @property
    def is_service_owner(self) -> bool:
        return self.role == SERVICE_OWNER

    @property
    def platform(self) -> str:
        return (self.platform_url or PLATFORM_URLS[self.environment]).rstrip("/")

    @property
    def maskinporten_issuer(self) -> str:
        return self.issuer or MASKINPORTEN_ISSUERS[self.environment]

    @property
    def self_service_url(self) -> str:
        return SELF_SERVICE[self.environment]

    @property
    def environment_name(self) -> str:
        return "TT02 (test)" if self.environment == "tt02" else "production"


# --- parsing what people type (each raises ValueError with what is wrong and what is expected) ---


def parse_resource_id(value: str) -> str:
    """A resource id with or without `urn:altinn:resource:`; returned without the prefix."""
    text = value.strip()
    resource_id = text.removeprefix(RESOURCE_PREFIX)
    if not resource_id:
        raise ValueError("give the resource id from Altinn's resource registry, e.g. my-correspondence-resource")
    try:
        check_resource_urn("resource", RESOURCE_PREFIX + resource_id)
    except ConfigError as error:
        raise ValueError(error.problem) from None
    return resource_id


def parse_orgnr(value: str) -> str:
    """A 9-digit organisation number, also as `0192:<orgnr>` or an organisation URN."""
    digits = value.strip().removeprefix(ORG_URN_PREFIX).removeprefix("0192:")
    if not re.fullmatch(r"\d{9}", digits):
        raise ValueError(f"must be a 9-digit organisation number, got {value!r}")
    return digits


def parse_role_code(value: str) -> str:
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z0-9]{2,12}", code):
        raise ValueError(f"must be an Altinn role code such as DAGL, got {value!r}")
    return code


def parse_owner_code(value: str) -> str:
    code = value.strip().lower()
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,29}", code):
        raise ValueError(f"must be your organisation's short code in Altinn (such as digdir or ttd), got {value!r}")
    return code


def parse_url(value: str, *, what: str) -> str:
    """An absolute http(s) URL without a query string (the receiver appends ?code= to the public URL)."""
    text = value.strip()
    try:
        check_url(what, text)
    except ConfigError as error:
        raise ValueError(error.problem) from None
    if urlsplit(text).query:
        raise ValueError(f"must not have a query string, got {value!r}")
    return text
