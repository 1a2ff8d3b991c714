"""Senders' `POST /correspondence/api/v1/correspondence` (JSON) and `/upload` (multipart), with Altinn's request
validation: model-binding problems as validation problems, handler checks as numbered ProblemDetails, in the order
InitializeCorrespondencesHandler and InitializeCorrespondenceValidationHelper make them."""

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
from altinn_sim.correspondence_errors import (
    ATTACHMENT_EXPIRY_TOO_SOON,
    BODY_EMPTY,
    BODY_TOO_LONG,
    CONFIDENTIAL_WITHOUT_FLAG,
    DUE_DATE_PRIOR_TODAY,
    DUE_DATE_REQUIRED,
    DUPLICATE_IDEMPOTENT_KEY,
    DUPLICATE_RECIPIENTS,
    EXISTING_ATTACHMENT_NOT_FOUND,
    FLAG_WITHOUT_CONFIDENTIAL_RESOURCE,
    IDEMPOTENT_KEY_WITH_MANY_RECIPIENTS,
    INVALID_LANGUAGE,
    INVALID_REPLY_OPTIONS,
    MISSING_CONTENT,
    NO_ACCESS,
    SUMMARY_TOO_LONG,
    TITLE_EMPTY,
    TITLE_TOO_LONG,
    TOO_MANY_ATTACHMENTS,
    UPLOADED_FILES_MISMATCH,
    CorrespondenceError,
    Error,
    validation_problem,
)
from altinn_sim.correspondence_model import Attachment, Correspondence
from altinn_sim.responses import ApiError, json_string, read_json
from receiver.timeutil import iso_after, now, parse_iso

if TYPE_CHECKING:
    from altinn_sim.state import SimState

LANGUAGES = ("nb", "nn", "en")
# API/Models/Enums/NotificationTemplateExt.cs by position; Core's NotificationTemplate also has Altinn2Message (2).
NOTIFICATION_TEMPLATES = ("CustomMessage", "GenericAltinnMessage")
CORE_NOTIFICATION_TEMPLATES = 3
MAX_TITLE = 255
MAX_SUMMARY = 255
MAX_BODY = 30000
MAX_ATTACHMENTS = 100
MIN_EXPIRATION_DAYS = 1
"""AttachmentHelper.ValidateAttachmentExpiration outside production (TT02); production asks for 14."""
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


class _Unbindable(ValueError):
    """A value the model binder cannot convert."""


def _lower_keys(value: Any) -> Any:
    """JSON property names are bound case-insensitively; keys of propertyList are the sender's own data."""
    if isinstance(value, dict):
        return {k.lower(): (v if k.lower() == "propertylist" else _lower_keys(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def unflatten(items: list[tuple[str, str]]) -> dict[str, Any]:
    """Multipart field names (`Correspondence.Content.Attachments[0].FileName`, `Recipients[1]`) as a tree
    with lower-case keys; a repeated plain name becomes a list. A name that names nothing binds to nothing."""
    root: dict[Any, Any] = {}
    for key, value in items:
        parts: list[Any] = [
            int(p[1:-1]) if p.startswith("[") else p.lower() for p in re.findall(r"[^.\[\]]+|\[\d+\]", key)
        ]
        if not parts:
            continue
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


def _model_errors(body: dict[str, Any], *, form: bool) -> dict[str, list[str]]:
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
    if isinstance(notification, dict):
        try:
            notification["notificationtemplate"] = notification_template(notification.get("notificationtemplate"))
        except _Unbindable as exc:
            errors.update(_unbindable_template(exc.args[0], form=form))
    return errors


def notification_template(value: Any) -> int | None:
    """The template as ASP.NET binds `NotificationTemplateExt?`: absent or null is None (the mapper then uses
    CustomMessage); a whole number (in JSON, or as text in a form) is taken as it is; a text is the enum's name
    in any letter case. Anything else is _Unbindable."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        names = [name.lower() for name in NOTIFICATION_TEMPLATES]
        if text.lower() in names:
            return names.index(text.lower())
    raise _Unbindable(value)


def _unbindable_template(value: Any, *, form: bool) -> dict[str, list[str]]:
    if form:
        return {"Correspondence.Notification.NotificationTemplate": [f"The value '{value}' is not valid for "
                                                                      "NotificationTemplate."]}  # fmt: skip
    path = "$.correspondence.notification.notificationTemplate"
    return {
        "request": ["The request field is required."],
        path: [
            "The JSON value could not be converted to "
            f"System.Nullable`1[Altinn.Correspondence.API.Models.Enums.NotificationTemplateExt]. Path: {path}"
        ],
    }


def _is_guid(value: Any) -> bool:
    try:
        return uuid.UUID(str(value)).int != 0
    except ValueError:
        return False


def _check(condition: bool, error: Error) -> None:
    if not condition:
        raise CorrespondenceError(error)


def _check_dates(corr: dict[str, Any]) -> str | None:
    """1016 (confirmation without a due date), then ValidateDateConstraints (1008)."""
    due = corr.get("duedatetime")
    if _flag(corr.get("isconfirmationneeded")):
        _check(bool(due), DUE_DATE_REQUIRED)
    if not due:
        return None
    try:
        moment = parse_iso(str(due))
    except ValueError:
        raise ApiError(validation_problem({"Correspondence.DueDateTime": ["Not a valid date-time."]})) from None
    _check(moment >= now(), DUE_DATE_PRIOR_TODAY)
    return str(due)


def _check_content(corr: dict[str, Any]) -> dict[str, Any]:
    """InitializeCorrespondenceHelper.ValidateCorrespondenceContent, in its order."""
    content = corr.get("content")
    _check(isinstance(content, dict), MISSING_CONTENT)
    assert isinstance(content, dict)
    title, body, summary = (str(content.get(k) or "") for k in ("messagetitle", "messagebody", "messagesummary"))
    _check(bool(title.strip()), TITLE_EMPTY)
    _check(len(title) <= MAX_TITLE, TITLE_TOO_LONG)
    _check(len(summary) <= MAX_SUMMARY, SUMMARY_TOO_LONG)
    _check(bool(body.strip()), BODY_EMPTY)
    _check(len(body) <= MAX_BODY, BODY_TOO_LONG)
    _check(str(content.get("language", "")).lower() in LANGUAGES, INVALID_LANGUAGE)
    return content


def _check_reply_options(corr: dict[str, Any]) -> list[dict[str, Any]]:
    options = corr.get("replyoptions") or []
    for option in options:
        url = str(option.get("linkurl", "")) if isinstance(option, dict) else ""
        _check(url.startswith("https://") and len(url) <= 255, INVALID_REPLY_OPTIONS)
    return [{"linkURL": o["linkurl"], "linkText": o.get("linktext")} for o in options]


def _expiration_time(metadata: dict[str, Any]) -> str | None:
    """`expirationInDays` counted from now (the request is published at once), as MapToCorrespondenceEntityAsync."""
    days = metadata.get("expirationindays")
    if days in (None, ""):
        return None
    try:
        count = int(days)
    except (TypeError, ValueError):
        raise ApiError(validation_problem({"Correspondence.Content.Attachments.ExpirationInDays": [
            f"The value '{days}' is not valid for ExpirationInDays."]})) from None  # fmt: skip
    _check(count >= MIN_EXPIRATION_DAYS, ATTACHMENT_EXPIRY_TOO_SOON)
    return iso_after(count * 86400)


def _attachments(metadata: list[Any], files: list[UploadFile] | None, contents: dict[str, bytes]) -> list[Attachment]:
    _check(len(metadata) <= MAX_ATTACHMENTS, TOO_MANY_ATTACHMENTS)
    names = sorted(str(m.get("filename", "")) for m in metadata if isinstance(m, dict))
    uploaded = sorted(f.filename or "" for f in files or [])
    _check(len(names) == len(metadata) and names == uploaded, UPLOADED_FILES_MISMATCH)
    expirations = [_expiration_time(m) for m in metadata]
    types = {f.filename: f.content_type or "application/octet-stream" for f in files or []}
    return [
        Attachment(
            file_name=m["filename"],
            display_name=str(m.get("displayname") or m["filename"]),
            data=contents[m["filename"]],
            data_type=types[m["filename"]],
            senders_reference=str(m.get("sendersreference") or m["filename"]),
            expiration_time=expiration,
        )
        for m, expiration in zip(metadata, expirations, strict=True)
    ]


def build(
    sim: SimState,
    body: dict[str, Any],
    caller: Caller,
    files: list[UploadFile] | None = None,
    contents: dict[str, bytes] | None = None,
) -> SendRequest:
    """The correspondences a valid request creates (one per recipient), or ApiError / CorrespondenceError."""
    errors = _model_errors(body, form=files is not None)
    if errors:
        raise ApiError(validation_problem(errors))
    corr: dict[str, Any] = body["correspondence"]
    template = (corr.get("notification") or {}).get("notificationtemplate")
    if template is not None and not 0 <= template < CORE_NOTIFICATION_TEMPLATES:
        # InitializeCorrespondenceNotificationMapper refuses it; the controller answers BadRequest(message).
        raise ApiError(json_string(400, "Invalid notification template"))
    recipients = [str(recipient_urn(r)) for r in body["recipients"]]
    key = str(body["idempotentkey"]) if body.get("idempotentkey") else None
    if key:
        _check(len(recipients) == 1, IDEMPOTENT_KEY_WITH_MANY_RECIPIENTS)
        if sim.correspondences.by_idempotent_key(key):
            raise CorrespondenceError(DUPLICATE_IDEMPOTENT_KEY)
    resource_id = corr["resourceid"]
    _check(sim.resources.owner(resource_id) in (None, caller.org), NO_ACCESS)
    confidential = _flag(corr.get("isconfidential"))
    if resource_id in sim.resources.confidential:
        _check(confidential, CONFIDENTIAL_WITHOUT_FLAG)
    else:
        _check(not confidential, FLAG_WITHOUT_CONFIDENTIAL_RESOURCE)
    _check(len(set(recipients)) == len(recipients), DUPLICATE_RECIPIENTS)
    due = _check_dates(corr)
    content = _check_content(corr)
    _check(not body.get("existingattachments"), EXISTING_ATTACHMENT_NOT_FOUND)
    metadata = content.get("attachments") or []
    _attachments(metadata, files, contents or {})  # every check before anything is stored
    replies = _check_reply_options(corr)
    return SendRequest(
        [
            Correspondence(
                resource_id=resource_id,
                sender_org=caller.org,
                recipient=recipient,
                senders_reference=corr["sendersreference"],
                language=content["language"],
                title=content["messagetitle"],
                summary=content.get("messagesummary"),
                body=content["messagebody"],
                attachments=_attachments(metadata, files, contents or {}),
                is_confirmation_needed=_flag(corr.get("isconfirmationneeded")),
                is_confidential=confidential,
                allow_forwarding=_flag(corr.get("allowforwarding")),
                due=due,
                message_sender=corr.get("messagesender"),
                property_list={str(k): str(v) for k, v in (corr.get("propertylist") or {}).items()},
                external_references=[
                    {"referenceValue": r.get("referencevalue"), "referenceType": r.get("referencetype")}
                    for r in corr.get("externalreferences") or []
                ],
                reply_options=replies,
                idempotent_key=key,
            )
            for recipient in recipients
        ],
        notify=isinstance(corr.get("notification"), dict),
    )


def send(sim: SimState, caller: Caller, request: SendRequest) -> Response:
    sim.resources.claim(request.correspondences[0].resource_id, caller.org)
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
    body = _lower_keys(await read_json(request, invalid=validation_problem))
    if not isinstance(body, dict):
        raise ApiError(validation_problem({"$": ["The JSON value could not be converted to a request."]}))
    return send(sim, caller, build(sim, body, caller))


async def upload(request: Request) -> Response:
    """Form parts are bound by name: a part whose name names nothing (an empty one) is ignored."""
    sim: SimState = request.app.state.sim
    caller = sim.authentication.require(request, WRITE_SCOPE)
    async with request.form(max_part_size=64 * 1024 * 1024) as form:
        fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        files = [v for k, v in form.multi_items() if isinstance(v, UploadFile) and k.lower() == "attachments"]
        contents = {f.filename or "": await f.read() for f in files}
        return send(sim, caller, build(sim, unflatten(fields), caller, files, contents))


routes = [
    Route(BASE, initialize, methods=["POST"]),
    Route(BASE + "/upload", upload, methods=["POST"]),
]
