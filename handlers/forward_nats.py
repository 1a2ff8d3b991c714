"""`forward_nats`: publish the event to NATS JetStream (through nats-py), the message every forward handler sends
(handlers/envelope.py), and call it done only once a stream has acknowledged it.

`mode = "structured"`: the payload is the CloudEvent as JSON with the header `Content-Type:
application/cloudevents+json`. `"binary"`: every attribute is a `ce-*` header (`datacontenttype` too, as the
CloudEvents NATS binding says, values percent-encoded as in HTTP) and the payload is `data`. `Nats-Msg-Id` is the
CloudEvent id, so the stream stores a retry after a lost ack once, within its `duplicate_window`: `start` warns when
that window is shorter than `[dispatch] backoff_cap` (for `stream`, or else for each stream the first time it acks).

One connection per handler, opened at start or when first needed, opened again when lost, closed when the receiver
stops. No ack within `timeout`, no stream for the subject, a stream that refuses the message and a lost connection
are retried; a subject the template makes invalid is permanent. The URL's credentials never reach a log line or an
error. Needs the extra `altinn-receiver[nats]`.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import nats.errors
import nats.js.errors
from cloudevents.core.bindings import http
from cloudevents.core.v1.event import CloudEvent
from nats.aio.client import Client
from nats.js import JetStreamContext

from handlers import Context, Duration, Event, OptionError, Permanent, RetryLater, setting
from handlers.envelope import encode
from handlers.forwarding import TEMPLATE_FIELDS, BrokerForwarder, check_template, location, render

SUBJECT = re.compile(r"[^\s.*>]+(\.[^\s.*>]+)*")
"""A subject to publish to: dot-separated tokens, none empty, no whitespace, no wildcard."""
STREAM_NAME = re.compile(r"[^\s.*>/\\]+")
EXPECTED_STREAM_MISMATCH = 10060
"""JetStream's error code when the subject's stream is not the `Nats-Expected-Stream`."""


@dataclass
class Link:
    """The handler's connection and its JetStream context; `closing` once the handler closes it."""

    client: Client
    jetstream: JetStreamContext
    closing: bool = False

    def usable(self) -> bool:
        return bool(self.client.is_connected)

    async def close(self) -> None:
        self.closing = True
        await self.client.close()


class ForwardNats(BrokerForwarder[Link]):
    name = "forward_nats"

    @dataclass(frozen=True)
    class Options:
        url: str = setting(secret=True, example='e.g. "nats://altinn:${NATS_PASSWORD}@nats:4222"')
        """`nats://host:4222` (or tls://), with `user:password@` or `token@`; secret: log lines show it without."""
        subject: str = setting(example='e.g. "altinn.{type}"')
        """A template: `{type}`, `{resource}`, `{resourceinstance}`, `{subject}` and `{id}` are the event's."""
        stream: str | None = None
        """When set, the stream that must store the message (JetStream refuses it if the subject is another's)."""
        mode: Literal["structured", "binary"] = "structured"
        timeout: Duration = setting(10.0, positive=True)
        """How long connecting, and each publish's ack, may take."""

        def __post_init__(self) -> None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                raise OptionError("url", f"must be a nats:// or tls:// URL with a host, got {location(self.url)!r}")
            check_template(self.subject, "subject")
            sample = self.subject.format_map(dict.fromkeys(TEMPLATE_FIELDS, "x"))
            if not SUBJECT.fullmatch(sample):
                raise OptionError("subject", f"{sample!r} is not a subject to publish to: {SUBJECT_RULE}")
            if self.stream is not None and not STREAM_NAME.fullmatch(self.stream):
                raise OptionError("stream", "must be a stream name: no whitespace, '.', '*', '>', '/' or '\\'")

    def __init__(self) -> None:
        super().__init__()
        self._windows_checked: set[str] = set()
        """The streams whose duplicate window has been compared with `backoff_cap`."""

    async def connect(self, ctx: Context[ForwardNats.Options]) -> Link:
        return await open_link(ctx.options, ctx)

    async def connected(self, link: Link, ctx: Context[ForwardNats.Options]) -> None:
        """Compare `stream`'s duplicate window with `backoff_cap` at start."""
        if ctx.options.stream is not None:
            await self._check_window(link, ctx.options.stream, ctx)

    async def forward(self, event: Event, ctx: Context[ForwardNats.Options]) -> None:
        options = ctx.options
        headers, payload = encode(event, ctx, lambda cloud: nats_message(cloud, options.mode))
        subject = render(options.subject, event)
        if not SUBJECT.fullmatch(subject):
            raise Permanent(f"subject {subject!r} (from {options.subject!r}) is not one to publish to: {SUBJECT_RULE}")
        link = await self.link()
        try:
            ack = await link.jetstream.publish(
                subject, payload, timeout=options.timeout, stream=options.stream, headers={**headers, MSG_ID: event.id}
            )
        except nats.js.errors.NoStreamResponseError:
            raise RetryLater(f"no JetStream stream takes subject {subject!r}: add it to a stream's subjects") from None
        except nats.errors.TimeoutError:
            raise RetryLater(f"no ack for subject {subject!r} within {options.timeout:g}s") from None
        except nats.js.errors.APIError as exc:
            raise RetryLater(refusal(exc, subject, options.stream)) from None
        except (nats.errors.Error, OSError) as exc:
            raise RetryLater(f"publishing to {subject!r}: the connection failed ({type(exc).__name__})") from None
        ctx.log.info("published", extra={"subject": subject, "stream": ack.stream, "seq": ack.seq,
                                         "duplicate": bool(ack.duplicate)})  # fmt: skip
        if ack.stream not in self._windows_checked:
            await self._check_window(link, ack.stream, ctx)

    async def _check_window(self, link: Link, stream: str, ctx: Context[Any]) -> None:
        """Warn, once per stream, when its duplicate window is shorter than the longest wait between two runs of an
        event: a retry after a lost ack could then be stored twice."""
        try:
            info = await link.jetstream.stream_info(stream)
        except nats.js.errors.NotFoundError:
            ctx.log.warning("stream not found: events are retried until it exists", extra={"stream": stream})
            return
        except (nats.errors.Error, OSError) as exc:  # not allowed to read it, say: once is enough
            self._windows_checked.add(stream)
            ctx.log.warning("cannot read the stream's settings", extra={"stream": stream, "error": type(exc).__name__})
            return
        self._windows_checked.add(stream)
        window = info.config.duplicate_window or 0.0
        if window < ctx.backoff_cap:
            ctx.log.warning(
                "the stream's duplicate_window is shorter than [dispatch] backoff_cap: a retry after a lost ack "
                "may be stored twice (consumers deduplicate by Nats-Msg-Id, or lengthen the window)",
                extra={"stream": stream, "duplicate_window": f"{window:g}s",
                       "backoff_cap": f"{ctx.backoff_cap:g}s"},
            )  # fmt: skip


MSG_ID = "Nats-Msg-Id"
SUBJECT_RULE = "dot-separated tokens, none empty, without whitespace or the wildcards * and >"


def refusal(exc: nats.js.errors.APIError, subject: str, stream: str | None) -> str:
    """Why JetStream refused a publish, for `last_error`."""
    if exc.err_code == EXPECTED_STREAM_MISMATCH:
        return f"subject {subject!r} belongs to no stream or another stream than {stream!r}"
    return f"JetStream refused subject {subject!r}: {exc.description} (code {exc.err_code})"


async def open_link(options: ForwardNats.Options, ctx: Context[Any]) -> Link:
    """The connection and its JetStream context; `RetryLater` with a reason that names no credential when it
    cannot. One attempt (nats-py makes it twice), and no reconnecting of its own: a lost connection is opened
    again by the next event, through `SharedConnection`."""
    client = Client()
    link = Link(client, client.jetstream(timeout=options.timeout))

    async def error(exc: Exception) -> None:
        ctx.log.debug("NATS connection error", extra={"error": type(exc).__name__})

    async def disconnected() -> None:
        if not link.closing:
            ctx.log.warning("lost the connection to the NATS server; the next event opens a new one")

    try:
        async with asyncio.timeout(options.timeout):
            await client.connect(
                servers=[options.url], name=f"altinn-receiver {ctx.name}", connect_timeout=math.ceil(options.timeout),
                allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0, error_cb=error,
                disconnected_cb=disconnected,
            )  # fmt: skip
        return link
    except TimeoutError:
        problem = f"no connection within {options.timeout:g}s"
    except (nats.errors.Error, OSError) as exc:
        problem = f"cannot connect ({type(exc).__name__})"
    except BaseException:  # cancelled: close what was opened
        await asyncio.shield(link.close())
        raise
    await link.close()
    raise RetryLater(f"{location(options.url)}: {problem}")


def nats_message(cloud: CloudEvent, mode: Literal["structured", "binary"]) -> tuple[dict[str, str], bytes]:
    """The CloudEvent as the NATS binding has it: (headers, payload). The binding's header names and values are the
    HTTP binding's (`ce-` prefix, percent-encoded), but for `datacontenttype`, a `ce-` header too: `Content-Type`
    says structured mode."""
    if mode == "binary":
        encoded = http.to_binary_event(cloud)
        headers = {"ce-datacontenttype" if name.lower() == "content-type" else name: value
                   for name, value in encoded.headers.items()}  # fmt: skip
        return headers, encoded.body
    encoded = http.to_structured_event(cloud)
    return {"Content-Type": encoded.headers["content-type"]}, encoded.body
