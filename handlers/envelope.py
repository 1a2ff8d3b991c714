"""The message every forward handler sends (`forward_http`, `forward_amqp`, `forward_nats`): the event as a CloudEvent
1.0 whose `data` is the correspondence `fetch_correspondence` read when it ran earlier in the pipeline, else the
event's own `data`.

When `download_attachments` ran too, each `content.attachments[i]` of that correspondence gains `localPath`: the file
on disk, or null when Altinn no longer served it. Attachments never travel as bytes: the agency's system reads the
files, which are where it can reach them (a volume they share).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cloudevents.core.v1.event import CloudEvent

from handlers import AttachmentFile, Context, Event, Permanent
from receiver.timeutil import parse_event_time

Message = TypeVar("Message")


def encode(event: Event, ctx: Context[Any], binding: Callable[[CloudEvent], Message]) -> Message:
    """The envelope of `event` as `binding` (a CloudEvents protocol binding's encoder) makes it a message;
    `Permanent` when the event cannot be a CloudEvent (the cloudevents package checks attribute names and values)."""
    try:
        return binding(cloud_event(event, envelope_data(event, ctx)))
    except Exception as exc:
        raise Permanent(f"the event cannot be sent as a CloudEvent: {type(exc).__name__}: {exc}") from None


def envelope_data(event: Event, ctx: Context[Any]) -> Any:
    """The CloudEvent's `data`: the fetched correspondence (with `localPath` on its attachments when they were
    downloaded), else the event's own `data`."""
    fetched = ctx.correspondence
    if fetched is None:
        return event.data
    downloads = ctx.attachments
    return fetched.raw if downloads is None else with_local_paths(fetched.raw, downloads)


def with_local_paths(details: Mapping[str, Any], downloads: Mapping[str, AttachmentFile]) -> dict[str, Any]:
    """A copy of a correspondence's details whose `content.attachments[i]` each have `localPath` (the file
    `download_attachments` wrote, or None); the details themselves are left as they are for the later steps."""
    content = details.get("content")
    if not isinstance(content, Mapping) or not isinstance(content.get("attachments"), list):
        return dict(details)
    located = []
    for attachment in content["attachments"]:
        if isinstance(attachment, Mapping):
            file = downloads.get(str(attachment.get("id")))
            path = file.path if file is not None else None
            attachment = {**attachment, "localPath": str(path) if path is not None else None}
        located.append(attachment)
    return {**details, "content": {**content, "attachments": located}}


def cloud_event(event: Event, data: Any) -> CloudEvent:
    """`event` as Altinn sent it (its extensions too), with `data`."""
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "source": event.source,
        "type": event.type,
        **{k: v for k, v in event.extensions.items() if isinstance(v, str | int | bool)},
    }
    for name in ("subject", "resource", "resourceinstance"):
        if getattr(event, name):
            attributes[name] = getattr(event, name)
    if event.time:
        attributes["time"] = parse_event_time(event.time)
    if data is not None:
        attributes["datacontenttype"] = "application/json"
    return CloudEvent(attributes, data)
