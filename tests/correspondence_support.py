"""Altinn's published Correspondence OpenAPI document, and checking a response body against one of its schemas.

The saved file is older than the service it describes (correspondence contract, "Saved OpenAPI file" and §7): what
Altinn serves now and the file lacks is added here, never written into the file.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from openapi_schema_validator import OAS30Validator, oas30_format_checker

from tests.support import DATA

SPEC_PATH = DATA / "correspondence-openapi.json"
# tests/data/README.md: Altinn's file as published; newer fields go in KNOWN_ADDITIONS, never into the file.
SPEC_SHA256 = "ad1254cf1862d2b054d53ab9c950eabf3f56a8e0a3dd0f8dcfa696d1435d846c"
READ = {"read": {"type": "string", "format": "date-time", "nullable": True}}
FORWARDING = {"allowForwarding": {"type": "boolean"}}
KNOWN_ADDITIONS: dict[str, dict[str, Any]] = {
    "CorrespondenceOverviewExt": {**READ, **FORWARDING},
    # §7.12: details carry `read` too, and `systemLabel`.
    "CorrespondenceDetailsExt": {**READ, **FORWARDING, "systemLabel": {"type": "string"}},
    # §7.2: `expirationTime` is null unless the sender gave expirationInDays (nullable since Altinn's #1664).
    "CorrespondenceAttachmentExt": {"expirationTime": {"type": "string", "format": "date-time", "nullable": True}},
}
KNOWN_ENUM_ADDITIONS = {"CorrespondenceStatusExt": ["Forwarded"], "AttachmentStatusExt": ["Expired"]}


def load_spec() -> dict[str, Any]:
    """The document's schemas with KNOWN_ADDITIONS applied."""
    document: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    schemas = copy.deepcopy(document["components"]["schemas"])
    for name, properties in KNOWN_ADDITIONS.items():
        schemas[name]["properties"].update(properties)
    for name, values in KNOWN_ENUM_ADDITIONS.items():
        schemas[name]["enum"] += values
    return {"components": {"schemas": schemas}}


def check(spec: dict[str, Any], schema_name: str, body: Any) -> None:
    """Validate as OpenAPI 3.0 (the file says 3.1 but uses 3.0's `nullable`)."""
    validator = OAS30Validator(
        {"$ref": f"#/components/schemas/{schema_name}", **spec}, format_checker=oas30_format_checker
    )
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
