"""Turning the bytes of a push into a `NewEvent`: raw JSON checks, stricter than the `cloudevents` package's.

The package is lenient where the receiver must not be: it invents an `id` and a `time` when they are missing, accepts
`specversion: "0.3"`, and fails with `AttributeError` on a JSON array. So the receiver checks the parsed JSON itself
(one object, required attributes present and of the right type, known optional attributes typed, extension names
and values). The doors do not build a `cloudevents.core.v1.event.CloudEvent` as well: its validation is implied by
these checks (specversion "1.0"; id, source, type, and subject, datacontenttype, dataschema when present, non-empty
strings; `time` read by `parse_event_time` as a timezone-aware datetime; extension names `[a-z0-9]{1,64}`, never
`data`), and building it was a third of the cost of validating an event. A test holds that true, with the package
as the oracle: tests/test_hostile_door.py `test_every_event_the_door_accepts_the_cloudevents_package_accepts_too`.
The stored `raw` is the body as sent (structured mode) and `time` is the text as sent.

Text that cannot be stored is refused here too, anywhere in the event (keys and `data` included): a lone surrogate,
which JSON can carry (`"\\ud800"`) but UTF-8 cannot, and NUL, which PostgreSQL cannot store. Either would fail the
commit, a 503 that Altinn retries and that can never succeed. `time` must be readable by
`receiver.timeutil.parse_event_time`, which the handlers use too.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from receiver.store.records import NewEvent
from receiver.text import escape_unstorable, unstorable
from receiver.timeutil import parse_event_time

VALIDATION_TYPE = "platform.events.validatesubscription"

REQUIRED = ("id", "source", "type")
# Optional attributes that, when present, must be non-empty strings (CloudEvents 1.0 §3.1.2).
NON_EMPTY_OPTIONAL = ("subject", "time", "datacontenttype", "dataschema")
# Altinn's extensions (events contract §3.2): kept as columns, so they must be strings.
ALTINN_EXTENSIONS = ("resource", "resourceinstance", "alternativesubject")
EXTENSION_NAME = re.compile(r"[a-z0-9]{1,64}")
# Where text that cannot be stored may hide: the character itself, or its JSON escape (a surrogate pair matches too;
# the walk then finds nothing), or NaN and Infinity. Only an event whose text matches is walked. Each match begins
# with one of a few characters, tested first as a set (the lookbehinds then say which): a quarter of the time of the
# plain alternation on an event without any, which is nearly every event.
MAY_BE_UNSTORABLE = re.compile(
    r"[\x00\ud800-\udfff\\NI]"
    r"(?:(?<=[\x00\ud800-\udfff])|(?<=\\)u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})|(?<=N)aN|(?<=I)nfinity)"
)
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
compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""A value as compact JSON text, not escaped to ASCII: how an event is kept when its text is not the one sent."""


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
    """`time` as `receiver.timeutil.parse_event_time` reads it (in UTC); raises InvalidEvent naming `time`."""
    try:
        return parse_event_time(text)
    except ValueError as exc:
        raise InvalidEvent("time", str(exc)) from None


def _member(path: str, key: str) -> str:
    return f"{path}.{escape_unstorable(key)}" if path else key


def check_storable(event: dict[str, Any]) -> None:
    """Refuse what cannot be stored as sent, in any key or string at any depth: a lone surrogate or NUL (and, from
    catch-up, whose JSON parser allows them, NaN and Infinity). InvalidEvent names the attribute, and the problem
    says where under it. The attributes' names are checked by `check_attributes`. Iterative: `data` may be nested
    as deeply as the JSON parser allows."""
    pending: list[tuple[str, str, Any]] = [(name, name, value) for name, value in event.items()]
    while pending:
        attribute, path, value = pending.pop()
        problem = None
        if isinstance(value, str):
            found = unstorable(value)
            problem = f"contains {found}" if found else None
        elif isinstance(value, float) and not math.isfinite(value):
            problem = f"holds {value}, which is not JSON"
        elif isinstance(value, dict):
            for key, item in value.items():
                found = unstorable(key)
                if found:
                    problem = f"has a key that contains {found}"
                    break
                pending.append((attribute, _member(path, key), item))
        elif isinstance(value, list):
            pending.extend((attribute, f"{path}[{index}]", item) for index, item in enumerate(value))
        if problem:
            where = "" if path == attribute else f" at {path}"
            raise InvalidEvent(attribute, f"{problem}{where}, which cannot be stored; send valid Unicode text")


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


def _check_data_base64(event: dict[str, Any]) -> None:
    """`data_base64`, when present, must be a base64 string."""
    encoded = event.get("data_base64")
    if encoded is None:
        return
    if not isinstance(encoded, str):
        raise InvalidEvent("data_base64", "must be a base64 string")
    try:
        base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEvent("data_base64", "is not valid base64") from None


def to_new_event(event: Any, raw: str) -> NewEvent:
    """Validate a parsed CloudEvent (the raw checks, which imply the `cloudevents` package's) and keep it as sent."""
    attributes = check_attributes(event)
    if MAY_BE_UNSTORABLE.search(raw):
        check_storable(event)
    _check_data_base64(event)
    time = attributes.get("time", "")
    if time:
        parse_time(time)
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


def refusal(raw: str) -> InvalidEvent | None:
    """Why the doors would refuse a stored event's `raw` today (None if they accept it): an event catch-up kept as
    dead, or one an older release stored, must not be handed to the handlers."""
    try:
        to_new_event(parse_json(raw), raw)
    except InvalidEvent as exc:
        return exc
    return None


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
                text: str | None = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is None or "\x00" in text:  # bytes rather than text: kept exactly, as base64
                event["data_base64"] = base64.b64encode(body).decode("ascii")
            else:
                event["data"] = text
    raw = compact_json(event)
    return to_new_event(event, raw)


def subscription_id(source: str) -> str:
    """The subscription id of a validation event: the last segment of `.../subscriptions/{id}`, else ''."""
    match = SUBSCRIPTION_SOURCE.search(source)
    return match.group(1) if match else ""
