"""Turning the bytes of a push into a `NewEvent`: raw JSON checks first, then the `cloudevents` package.

The raw checks come first because the package is lenient where the receiver must not be: it invents an `id` and a
`time` when they are missing, accepts `specversion: "0.3"`, and fails with `AttributeError` on a JSON array. So the
receiver checks the parsed JSON itself (one object, required attributes present and of the right type, known
optional attributes typed), then hands the already-parsed attributes to `cloudevents.core.v1.event.CloudEvent`, whose
own validation must also pass. The stored `raw` is the body as sent (structured mode) and `time` is the text as sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from cloudevents.core.v1.event import CloudEvent

from receiver.store.inbox import NewEvent

VALIDATION_TYPE = "platform.events.validatesubscription"

REQUIRED = ("id", "source", "type")
# Optional attributes that, when present, must be non-empty strings (CloudEvents 1.0 §3.1.2).
NON_EMPTY_OPTIONAL = ("subject", "time", "datacontenttype", "dataschema")
# Altinn's extensions (events contract §3.2): kept as columns, so they must be strings.
ALTINN_EXTENSIONS = ("resource", "resourceinstance", "alternativesubject")
EXTENSION_NAME = re.compile(r"[a-z0-9]{1,64}")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)")
SUBSCRIPTION_SOURCE = re.compile(r"/subscriptions/([^/?#]+)/?$")
CE_HEADER_PREFIX = "ce-"
JSON_MEDIA = re.compile(r"(?:application|text)/(?:[a-z0-9.+-]+\+)?json")


class InvalidEvent(ValueError):
    """The body is not one acceptable CloudEvent; `attribute` names the offending attribute ('' for the body)."""

    def __init__(self, attribute: str, problem: str) -> None:
        super().__init__(f"{attribute}: {problem}" if attribute else problem)
        self.attribute = attribute
        self.problem = problem


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_text(body: bytes, attribute: str = "") -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent(attribute, "the body is not UTF-8 text") from None


def parse_json(text: str, attribute: str = "") -> Any:
    """Strict JSON: no NaN/Infinity, no nesting deep enough to recurse out."""
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise InvalidEvent(attribute, "the JSON is nested too deeply") from None
    except ValueError as exc:
        raise InvalidEvent(attribute, f"the body is not valid JSON ({exc})") from None


def load_json(body: bytes, attribute: str = "") -> Any:
    """Strict JSON from UTF-8 bytes (no other encodings)."""
    return parse_json(decode_text(body, attribute), attribute)


def parse_time(text: str) -> datetime:
    """RFC 3339 with up to 9 fractional digits (Altinn writes 7); raises InvalidEvent naming `time`.

    `datetime.fromisoformat` drops the fractional digits past the sixth (.NET's 100 ns ticks and beyond).
    """
    if not RFC3339.fullmatch(text):
        raise InvalidEvent("time", f"must be an RFC 3339 timestamp such as 2024-04-19T07:22:19.4380391Z, got {text!r}")
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError:
        raise InvalidEvent("time", f"is not a valid date and time: {text!r}") from None


def check_attributes(event: Any) -> dict[str, Any]:
    """The raw checks: one JSON object whose attributes have the types CloudEvents 1.0 requires.

    Returns the attributes without `data`/`data_base64` and without null-valued optional attributes (the JSON
    format treats null as absent).
    """
    if not isinstance(event, dict):
        kind = "an array (a batch)" if isinstance(event, list) else type(event).__name__
        raise InvalidEvent("", f"the body must be one CloudEvent as a JSON object, got {kind}")
    specversion = event.get("specversion")
    if specversion != "1.0":
        found = "missing" if specversion is None else f"{specversion!r}"
        raise InvalidEvent("specversion", f'must be "1.0", got {found}')
    for name in REQUIRED:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            found = "missing" if value is None else f"{type(value).__name__} {value!r}"[:80]
            raise InvalidEvent(name, f"must be a non-empty string, got {found}")
    attributes: dict[str, Any] = {}
    for name, value in event.items():
        if value is None or name in ("data", "data_base64"):
            continue
        if name in NON_EMPTY_OPTIONAL:
            if not isinstance(value, str) or not value:
                raise InvalidEvent(name, f"must be a non-empty string when present, got {value!r}"[:120])
        elif name in ALTINN_EXTENSIONS:
            if not isinstance(value, str):
                raise InvalidEvent(name, f"must be a string, got {type(value).__name__}")
        elif name not in REQUIRED and name != "specversion":
            if not EXTENSION_NAME.fullmatch(name):
                raise InvalidEvent(name[:64], "is not a valid attribute name (lower-case letters and digits only)")
            if not isinstance(value, str | int | float | bool):
                raise InvalidEvent(
                    name, f"an extension attribute must be a string, number or boolean, not {type(value).__name__}"
                )
        attributes[name] = value
    if "data" in event and event.get("data_base64") is not None and event["data"] is not None:
        raise InvalidEvent("data_base64", "must not be sent together with data")
    return attributes


def _event_data(event: dict[str, Any]) -> Any:
    encoded = event.get("data_base64")
    if encoded is None:
        return event.get("data")
    if not isinstance(encoded, str):
        raise InvalidEvent("data_base64", "must be a base64 string")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEvent("data_base64", "is not valid base64") from None


def _first_error(error: CloudEventValidationError) -> tuple[str, str]:
    for name, problems in error.errors.items():
        detail: BaseCloudEventException | None = problems[0] if problems else None
        return name, str(detail) if detail is not None else "is invalid"
    return "", str(error)


def to_new_event(event: Any, raw: str) -> NewEvent:
    """Validate a parsed CloudEvent (raw checks, then the package's own) and keep it as sent."""
    attributes = check_attributes(event)
    data = _event_data(event)
    time = attributes.get("time", "")
    if time:
        attributes["time"] = parse_time(time)
    try:
        CloudEvent(attributes, data)
    except CloudEventValidationError as exc:
        raise InvalidEvent(*_first_error(exc)) from None
    return NewEvent(
        id=event["id"],
        type=event["type"],
        source=event["source"],
        subject=event.get("subject") or "",
        resource=event.get("resource") or "",
        resourceinstance=event.get("resourceinstance") or "",
        time=time,
        raw=raw,
    )


def from_structured(body: bytes) -> NewEvent:
    """A structured-mode push: the whole event is the JSON body, stored byte-for-byte as text."""
    text = decode_text(body)
    return to_new_event(parse_json(text), text)


def from_binary(headers: Iterable[tuple[str, str]], content_type: str, body: bytes) -> NewEvent:
    """A binary-mode push: attributes in `ce-*` headers (percent-encoded), the body is `data`.

    It is stored as the equivalent structured JSON, so every reader of `raw` sees one shape.
    """
    event: dict[str, Any] = {}
    for name, value in headers:
        if name.startswith(CE_HEADER_PREFIX) and len(name) > len(CE_HEADER_PREFIX):
            attribute = name[len(CE_HEADER_PREFIX) :]
            try:
                event[attribute] = unquote(value, errors="strict")
            except UnicodeDecodeError:
                raise InvalidEvent(attribute, f"header {name} is not percent-encoded UTF-8") from None
    if content_type:
        event["datacontenttype"] = content_type
    if body:
        media = content_type.split(";", 1)[0].strip().lower()
        if not media or JSON_MEDIA.fullmatch(media):
            event["data"] = load_json(body, "data")
        else:
            try:
                event["data"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["data_base64"] = base64.b64encode(body).decode("ascii")
    raw = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return to_new_event(event, raw)


def subscription_id(source: str) -> str:
    """The subscription id of a validation event: the last segment of `.../subscriptions/{id}`, else ''."""
    match = SUBSCRIPTION_SOURCE.search(source)
    return match.group(1) if match else ""
