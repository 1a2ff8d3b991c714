"""Senders' `POST /correspondence/api/v1/correspondence` (JSON) and `/upload` (multipart), with Altinn's request
validation: model-binding problems as ValidationProblemDetails, handler checks as numbered ProblemDetails."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from altinn_sim.authentication import Caller
from altinn_sim.correspondence import BASE, WRITE_SCOPE
from altinn_sim.correspondence_model import Attachment, Correspondence, CorrespondenceError
from altinn_sim.responses import ApiError, problem, read_json, validation_problem
from receiver.timeutil import now, parse_iso

if TYPE_CHECKING:
    from altinn_sim.state import SimState

LANGUAGES = ("nb", "nn", "en")
NOTIFICATION_TEMPLATES = ("CustomMessage", "GenericAltinnMessage")
MAX_TITLE = 255
MAX_SUMMARY = 255
MAX_BODY = 10000
MAX_ATTACHMENTS = 100
RECIPIENT_FORMS = (
    (re.compile(r"urn:altinn:organization:identifier-no:(\d{9})"), "urn:altinn:organization:identifier-no:{}"),
    (re.compile(r"urn:altinn:person:identifier-no:(\d{11})"), "urn:altinn:person:identifier-no:{}"),
    (re.compile(r"(?:0192:)?(\d{9})"), "urn:altinn:organization:identifier-no:{}"),
    (re.compile(r"(\d{11})"), "urn:altinn:person:identifier-no:{}"),
    (re.compile(r"(urn:altinn:person:idporten-email:.+@.+)"), "{}"),
)


@dataclass
class SendRequest:
    correspondences: list[Correspondence]
    notify: bool


def _lower_keys(value: Any) -> Any:
    """JSON property names are bound case-insensitively; keys of propertyList are the sender's own data."""
    if isinstance(value, dict):
        return {k.lower(): (v if k.lower() == "propertylist" else _lower_keys(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def unflatten(items: list[tuple[str, str]]) -> dict[str, Any]:
    """Multipart field names (`Correspondence.Content.Attachments[0].FileName`, `Recipients[1]`) as a tree
    with lower-case keys; a repeated plain name becomes a list."""
    root: dict[Any, Any] = {}
    for key, value in items:
        parts: list[Any] = [
            int(p[1:-1]) if p.startswith("[") else p.lower() for p in re.findall(r"[^.\[\]]+|\[\d+\]", key)
        ]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        leaf = parts[-1]
        if leaf in node:
            existing = node[leaf]
            node[leaf] = [*(existing if isinstance(existing, list) else [existing]), value]
        else:
            node[leaf] = value
    tree = _listify(root)
    assert isinstance(tree, dict)
    return tree


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(isinstance(k, int) for k in converted):
        return [converted[k] for k in sorted(converted)]
    return converted


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def recipient_urn(raw: Any) -> str | None:
    for pattern, form in RECIPIENT_FORMS:
        match = pattern.fullmatch(str(raw))
        if match:
            return form.format(match.group(1))
    return None


def _model_errors(body: dict[str, Any]) -> dict[str, list[str]]:
    """What ASP.NET model validation refuses before the handler runs."""
    errors: dict[str, list[str]] = {}
    corr = body.get("correspondence")
    if not isinstance(corr, dict):
        return {"Correspondence": ["The Correspondence field is required."]}
    for name, field, limit in (("ResourceId", "resourceid", 255), ("SendersReference", "sendersreference", 4096)):
        value = corr.get(field)
        if not isinstance(value, str) or not value:
            errors[f"Correspondence.{name}"] = [f"The {name} field is required."]
        elif len(value) > limit:
            errors[f"Correspondence.{name}"] = [f"The field {name} must be a string with a maximum length of {limit}."]
    recipients = body.get("recipients")
    if isinstance(recipients, str):
        recipients = body["recipients"] = [recipients]
    if not isinstance(recipients, list) or not recipients:
        errors["Recipients"] = ["The Recipients field is required."]
    else:
        bad = [str(r) for r in recipients if recipient_urn(r) is None]
        if bad:
            errors["Recipients"] = [
                f"Recipient {r} must be urn:altinn:organization:identifier-no:<9 digits>, "
                "urn:altinn:person:identifier-no:<11 digits> or urn:altinn:person:idporten-email:<email>"
                for r in bad
            ]
    key = body.get("idempotentkey")
    if key is not None and not _is_guid(key):
        errors["IdempotentKey"] = ["The idempotency key must be a valid non-empty GUID"]
    notification = corr.get("notification")
    if isinstance(notification, dict) and notification.get("notificationtemplate") not in NOTIFICATION_TEMPLATES:
        errors["Correspondence.Notification.NotificationTemplate"] = ["The NotificationTemplate field is required."]
    return errors


def _is_guid(value: Any) -> bool:
    try:
        return uuid.UUID(str(value)).int != 0
    except ValueError:
        return False


def _check(condition: bool, code: int, message: str) -> None:
    if not condition:
        raise CorrespondenceError(code, 400, message)


def _check_content(corr: dict[str, Any]) -> dict[str, Any]:
    content = corr.get("content")
    _check(isinstance(content, dict), 1019, "The Content field must be provided for the correspondence")
    assert isinstance(content, dict)
    _check(
        content.get("language") in LANGUAGES,
        1023,
        "Invalid language chosen. Supported languages is Norsk bokmål (nb), Nynorsk (nn) and English (en)",
    )
    title, body, summary = (str(content.get(k) or "") for k in ("messagetitle", "messagebody", "messagesummary"))
    _check(bool(title.strip()), 1020, "Message title cannot be empty")
    _check(len(title) <= MAX_TITLE, 1037, "Message title cannot exceed 255 characters")
    _check(bool(body.strip()), 1021, "Message body cannot be empty")
    _check(len(body) <= MAX_BODY, 1022, "Message body cannot exceed 10000 characters")
    _check(len(summary) <= MAX_SUMMARY, 1042, "Message summary, if not null, must be between 0 and 255 characters long")
    return content  # fmt: skip


def _check_dates(corr: dict[str, Any]) -> str | None:
    due = corr.get("duedatetime")
    if _flag(corr.get("isconfirmationneeded")):
        _check(bool(due), 1016, "DueDateTime is required when confirmation is needed")
    if not due:
        return None
    try:
        moment = parse_iso(str(due))
    except ValueError:
        raise ApiError(validation_problem({"Correspondence.DueDateTime": ["Not a valid date-time."]})) from None
    _check(moment.date() >= now().date(), 1008, "DueDateTime cannot be prior to today")
    return str(due)


def _check_reply_options(corr: dict[str, Any]) -> list[dict[str, Any]]:
    options = corr.get("replyoptions") or []
    for option in options:
        url = str(option.get("linkurl", "")) if isinstance(option, dict) else ""
        _check(url.startswith("https://") and len(url) <= 255, 1035,
               "Reply options must be well-formed URIs and HTTPS with a max length of 255 characters")  # fmt: skip
    return [{"linkURL": o["linkurl"], "linkText": o.get("linktext")} for o in options]


def _attachments(metadata: list[Any], files: list[UploadFile] | None, contents: dict[str, bytes]) -> list[Attachment]:
    _check(len(metadata) <= MAX_ATTACHMENTS, 1038, "A correspondence cannot contain more than 100 attachments in total")
    names = sorted(str(m.get("filename", "")) for m in metadata if isinstance(m, dict))
    uploaded = sorted(f.filename or "" for f in files or [])
    _check(len(names) == len(metadata) and names == uploaded, 1005,
           "Mismatch between uploaded files and attachment metadata")  # fmt: skip
    types = {f.filename: f.content_type or "application/octet-stream" for f in files or []}
    return [
        Attachment(
            file_name=m["filename"],
            display_name=str(m.get("displayname") or m["filename"]),
            data=contents[m["filename"]],
            data_type=types[m["filename"]],
            senders_reference=str(m.get("sendersreference") or m["filename"]),
        )
        for m in metadata
    ]


def build(
    body: dict[str, Any],
    caller: Caller,
    files: list[UploadFile] | None = None,
    contents: dict[str, bytes] | None = None,
) -> SendRequest:
    """The correspondences a valid request creates (one per recipient), or ApiError / CorrespondenceError."""
    errors = _model_errors(body)
    if errors:
        raise ApiError(validation_problem(errors))
    corr: dict[str, Any] = body["correspondence"]
    content = _check_content(corr)
    due = _check_dates(corr)
    replies = _check_reply_options(corr)
    recipients = [str(recipient_urn(r)) for r in body["recipients"]]
    _check(len(set(recipients)) == len(recipients), 1006, "Recipients must be unique")
    _check(not body.get("existingattachments"), 1007, "Existing attachment not found")
    metadata = content.get("attachments") or []
    correspondences = []
    for recipient in recipients:
        correspondences.append(
            Correspondence(
                resource_id=corr["resourceid"],
                sender_org=caller.org,
                recipient=recipient,
                senders_reference=corr["sendersreference"],
                language=content["language"],
                title=content["messagetitle"],
                summary=content.get("messagesummary"),
                body=content["messagebody"],
                attachments=_attachments(metadata, files, contents or {}),
                is_confirmation_needed=_flag(corr.get("isconfirmationneeded")),
                due=due,
                message_sender=corr.get("messagesender"),
                property_list={str(k): str(v) for k, v in (corr.get("propertylist") or {}).items()},
                external_references=[
                    {"referenceValue": r.get("referencevalue"), "referenceType": r.get("referencetype")}
                    for r in corr.get("externalreferences") or []
                ],
                reply_options=replies,
                idempotent_key=str(body["idempotentkey"]) if body.get("idempotentkey") else None,
            )
        )
    return SendRequest(correspondences, notify=isinstance(corr.get("notification"), dict))


def send(sim: SimState, caller: Caller, request: SendRequest) -> Response:
    first = request.correspondences[0]
    if not sim.resources.claim(first.resource_id, caller.org):
        return problem(401, "You must use an Altinn token, DialogToken or log in to IDPorten as someone with access "
                       "to the resource and organization in Altinn Authorization", error_code=4001)  # fmt: skip
    if first.idempotent_key and sim.correspondences.by_idempotent_key(first.idempotent_key):
        return problem(409, "A correspondence with the same idempotent key already exists", error_code=1034)
    for correspondence in request.correspondences:
        sim.correspondences.add(correspondence, notify=request.notify)
    return JSONResponse(
        {
            "correspondences": [
                {
                    "correspondenceId": c.id,
                    "status": "Initialized",
                    "recipient": c.recipient,
                    "notifications": [
                        {"orderId": order, "isReminder": False, "status": "Success"}
                        for order in c.notification_order_ids
                    ],
                }
                for c in request.correspondences
            ],
            "attachmentIds": [a.id for c in request.correspondences for a in c.attachments],
        }
    )


async def initialize(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request, WRITE_SCOPE)
    body = _lower_keys(await read_json(request))
    if not isinstance(body, dict):
        raise ApiError(validation_problem({"$": ["The JSON value could not be converted to a request."]}))
    return send(sim, caller, build(body, caller))


async def upload(request: Request) -> Response:
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request, WRITE_SCOPE)
    async with request.form(max_part_size=64 * 1024 * 1024) as form:
        fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        files = [v for k, v in form.multi_items() if isinstance(v, UploadFile) and k.lower() == "attachments"]
        contents = {f.filename or "": await f.read() for f in files}
        return send(sim, caller, build(unflatten(fields), caller, files, contents))


routes = [
    Route(BASE, initialize, methods=["POST"]),
    Route(BASE + "/upload", upload, methods=["POST"]),
]
