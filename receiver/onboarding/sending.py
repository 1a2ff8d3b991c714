"""The `InitializeCorrespondencesExt` body `send` posts (correspondence contract §1.2-§1.3), and its recipients."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from receiver.onboarding.agency import ORG_URN_PREFIX, PERSON_URN_PREFIX

LANGUAGE = "nb"
MAX_TITLE = 255
CONFIDENTIAL_ACCESS_PACKAGE = "urn:altinn:accesspackage:post-til-virksomheten-med-taushetsbelagt-innhold"
"""The access package ("Post til virksomheten med taushetsbelagt innhold") a confidential resource's policy asks for,
and so a recipient needs to read what is sent on it (correspondence contract §7.16)."""


def recipient_urn(value: str) -> str:
    """An organisation or person URN, or a bare 9-digit organisation / 11-digit national identity number as one."""
    text = value.strip()
    if re.fullmatch(re.escape(ORG_URN_PREFIX) + r"\d{9}", text) or re.fullmatch(
        re.escape(PERSON_URN_PREFIX) + r"\d{11}", text
    ):
        return text
    digits = text.removeprefix("0192:")
    if re.fullmatch(r"\d{9}", digits):
        return ORG_URN_PREFIX + digits
    if re.fullmatch(r"\d{11}", text):
        return PERSON_URN_PREFIX + text
    raise ValueError(
        f"must be an organisation number (9 digits), a national identity number (11 digits), or a URN such as "
        f"{ORG_URN_PREFIX}<orgnr>; got {value!r}"
    )


def check_title(value: str) -> str:
    title = value.strip()
    if not title:
        raise ValueError("must not be empty")
    if len(title) > MAX_TITLE:
        raise ValueError(f"must be at most {MAX_TITLE} characters, got {len(title)}")
    return title


def check_attachments(files: Sequence[Path]) -> None:
    """Each file part is matched to its entry by file name, so names must be unique."""
    names = [file.name for file in files]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"two attachments are named {', '.join(repeated)}: Altinn tells them apart by file name")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def initialize_body(
    *,
    resource_id: str,
    recipient: str,
    title: str,
    body: str,
    attachments: Sequence[Path] = (),
    confirmation_needed: bool = False,
    confidential: bool = False,
    due: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """The JSON body (or, with attachments, the fields of the multipart form) for one recipient. `due` is the
    ISO-8601 dueDateTime, which Altinn requires when a confirmation is needed; `confidential` sets `isConfidential`,
    which a confidential resource requires and any other refuses."""
    senders_reference = reference or f"altinn-receiver-send-{uuid.uuid4()}"
    content: dict[str, Any] = {"language": LANGUAGE, "messageTitle": title, "messageBody": body}
    if attachments:
        content["attachments"] = [
            {
                "fileName": file.name,
                "displayName": file.name,
                "isEncrypted": False,
                "checksum": _md5(file),
                "sendersReference": f"{senders_reference}-{index}",
                "dataLocationType": "NewCorrespondenceAttachment",
            }
            for index, file in enumerate(attachments, start=1)
        ]
    correspondence: dict[str, Any] = {
        "resourceId": resource_id,
        "sendersReference": senders_reference,
        "content": content,
        "isConfirmationNeeded": confirmation_needed,
    }
    if confidential:
        correspondence["isConfidential"] = True
    if due:
        correspondence["dueDateTime"] = due
    return {
        "correspondence": correspondence,
        "recipients": [recipient],
        "idempotentKey": str(uuid.uuid4()),
    }


def initialized(response: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(correspondence id, status, notification order ids) of the one correspondence in the answer."""
    items = response.get("correspondences")
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise ValueError("Altinn's answer lists no correspondence")
    first = items[0]
    orders = [str(n["orderId"]) for n in first.get("notifications") or [] if isinstance(n, dict) and n.get("orderId")]
    return str(first.get("correspondenceId", "")), str(first.get("status", "")), orders


def refusal_hint(error_code: object, resource_id: str) -> str | None:
    """What to do about Altinn refusing to initialize a correspondence, for the refusals whose message does not say
    it: the confidentiality checks (Application/Errors.cs 1060 and 1061), which are about access."""
    code = str(error_code)
    if code == "1060":
        return (
            f"{resource_id} is a confidential resource: its policy asks for the access package "
            f"{CONFIDENTIAL_ACCESS_PACKAGE}, which a recipient needs to read what is sent on it, and Altinn takes "
            "such correspondences only marked confidential: send it again with --confidential"
        )
    if code == "1061":
        return (
            f"{resource_id} is not a confidential resource: its policy does not ask for the access package "
            f"{CONFIDENTIAL_ACCESS_PACKAGE}, so Altinn refuses correspondences marked confidential on it: send it "
            "without --confidential (or have the resource's policy require that access package)"
        )
    return None
