"""`forward_amqp`: publish the event to RabbitMQ (AMQP 0-9-1, through aio-pika), the message every forward handler
sends (handlers/envelope.py), and call it done only once the broker has confirmed it.

`mode = "structured"`: the body is the CloudEvent as JSON, `content_type` application/cloudevents+json. `"binary"`:
the attributes are `cloudEvents_*` headers (the CloudEvents AMQP binding's application properties; `time` in its
string form, which keeps Altinn's fractions of a second) and the body is `data`, `content_type` application/json. The
AMQP `message_id` is the CloudEvent id, by which consumers deduplicate.

One connection and channel (publisher confirms) per handler, opened at start or when first needed, opened again
when lost, closed when the receiver stops. An unreachable broker, a nack, no confirm within `timeout`, a missing
exchange and (with `mandatory`) a message no queue takes are retried; the URL's credentials never reach a log line
or an error. Needs the extra `altinn-receiver[amqp]`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

import aio_pika
import aiormq
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from cloudevents.core.bindings import amqp
from cloudevents.core.v1.event import CloudEvent

from handlers import Context, Duration, Event, OptionError, Permanent, RetryLater, setting
from handlers.envelope import encode
from handlers.forwarding import BrokerForwarder, check_template, location, render

MAX_ROUTING_KEY_BYTES = 255


@dataclass(frozen=True)
class Link:
    """The handler's connection, its channel with publisher confirms (and the aiormq channel under it, which
    publishes), and the exchange it publishes to."""

    connection: AbstractConnection
    channel: AbstractChannel
    publisher: aiormq.Channel
    exchange: AbstractExchange

    def usable(self) -> bool:
        return not self.connection.is_closed and not self.channel.is_closed

    async def close(self) -> None:
        await self.connection.close()


class ForwardAmqp(BrokerForwarder[Link]):
    name = "forward_amqp"

    @dataclass(frozen=True)
    class Options:
        url: str = setting(secret=True, example='e.g. "amqp://altinn:${RABBITMQ_PASSWORD}@rabbitmq:5672/"')
        """`amqp://user:password@host:5672/vhost` (or amqps://); secret: log lines show it without credentials."""
        routing_key: str = setting(example='e.g. "altinn.{type}"')
        """A template: `{type}`, `{resource}`, `{resourceinstance}`, `{subject}` and `{id}` are the event's."""
        exchange: str = ""
        """The exchange to publish to; "" is the default exchange, which routes by queue name."""
        mode: Literal["structured", "binary"] = "structured"
        persistent: bool = True
        """Delivery mode 2: a durable queue keeps the message across a broker restart."""
        mandatory: bool = True
        """A message no queue takes is an error (retried), not silently dropped."""
        declare: bool = False
        """Declare `exchange` as a durable topic exchange on connecting (never the default exchange)."""
        timeout: Duration = setting(10.0, positive=True)
        """How long connecting, and each publish's confirm, may take."""

        def __post_init__(self) -> None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
                raise OptionError("url", f"must be an amqp:// or amqps:// URL with a host, got {location(self.url)!r}")
            check_template(self.routing_key, "routing_key")
            if self.declare and not self.exchange:
                raise OptionError(
                    "declare", 'cannot declare the default exchange (exchange = ""): name an exchange, or leave it out'
                )

    async def connect(self, ctx: Context[ForwardAmqp.Options]) -> Link:
        return await open_link(ctx.options, ctx.name)

    async def forward(self, event: Event, ctx: Context[ForwardAmqp.Options]) -> None:
        options = ctx.options
        message = encode(event, ctx, lambda cloud: amqp_message(cloud, options.mode, options.persistent))
        routing_key = render(options.routing_key, event)
        if len(routing_key.encode()) > MAX_ROUTING_KEY_BYTES:
            raise Permanent(f"routing key {routing_key[:40]!r}... is longer than AMQP's {MAX_ROUTING_KEY_BYTES} bytes")
        where = f"exchange {options.exchange!r} with routing key {routing_key!r}"
        link = await self.link()
        try:
            # Not aio-pika's `exchange.publish`: it holds the channel's lock until the socket has taken the message,
            # a turn of the busy event loop for each publish, one after the other (bench/README.md). Without
            # waiting for that the lock is held only to queue the frames; the broker's confirm is awaited all the same.
            await link.publisher.basic_publish(
                message.body, exchange=link.exchange.name, routing_key=routing_key, properties=message.properties,
                mandatory=options.mandatory, timeout=options.timeout, wait=False,
            )  # fmt: skip
        except aiormq.exceptions.PublishError:
            raise RetryLater(f"no queue is bound to {where}: the broker returned the message (mandatory)") from None
        except aiormq.exceptions.DeliveryError:
            raise RetryLater(f"the broker refused the message for {where} (nack)") from None
        except TimeoutError:
            raise RetryLater(f"no confirm from the broker within {options.timeout:g}s") from None
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise RetryLater(missing_exchange(options.exchange)) from None
        except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, OSError) as exc:
            raise RetryLater(f"publishing to {where}: the connection failed ({type(exc).__name__})") from None
        ctx.log.info("published", extra={"exchange": options.exchange, "routing_key": routing_key})


async def open_link(options: ForwardAmqp.Options, name: str) -> Link:
    """The connection, its channel and the exchange (declared when `declare`, else checked to exist); `RetryLater`
    with a reason that names no credential when it cannot."""
    connection: AbstractConnection | None = None
    try:
        async with asyncio.timeout(options.timeout):
            connection = await aio_pika.connect(
                options.url, client_properties={"connection_name": f"altinn-receiver {name}"}
            )
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await exchange_of(channel, options)
            publisher = await channel.get_underlay_channel()
            assert isinstance(publisher, aiormq.Channel), "aio-pika's channels are aiormq's"
            return Link(connection, channel, publisher, exchange)
    except TimeoutError:
        problem = f"no connection within {options.timeout:g}s"
    except (aiormq.exceptions.ProbableAuthenticationError, aiormq.exceptions.AuthenticationError):
        problem = "the broker refused the credentials in the URL"
    except aiormq.exceptions.ChannelNotFoundEntity:
        problem = missing_exchange(options.exchange)
    except aiormq.exceptions.ChannelPreconditionFailed:
        problem = f"exchange {options.exchange!r} exists, but not as a durable topic exchange"
    except (aiormq.exceptions.AMQPError, OSError) as exc:
        problem = f"cannot connect ({type(exc).__name__})"
    except BaseException:  # cancelled: close what was opened
        if connection is not None:
            await asyncio.shield(connection.close())
        raise
    if connection is not None:
        await connection.close()
    raise RetryLater(f"{location(options.url)}: {problem}")


def missing_exchange(exchange: str) -> str:
    return f"exchange {exchange!r} does not exist (declare it, or set declare = true)"


async def exchange_of(channel: AbstractChannel, options: ForwardAmqp.Options) -> AbstractExchange:
    if options.declare:
        return await channel.declare_exchange(options.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    if not options.exchange:
        return channel.default_exchange
    return await channel.get_exchange(options.exchange, ensure=True)


def amqp_message(cloud: CloudEvent, mode: Literal["structured", "binary"], persistent: bool) -> aio_pika.Message:
    """The CloudEvent as the AMQP binding has it, in an AMQP 0-9-1 message: the binding's application properties
    are the message's headers, its `content-type` the `content_type` property."""
    encoded = (amqp.to_binary_event if mode == "binary" else amqp.to_structured_event)(cloud)
    headers = dict(encoded.application_properties)
    if mode == "binary" and isinstance(time := cloud.get_time(), datetime):
        # The binding's native AMQP timestamp is whole seconds in 0-9-1; its string form, which it also allows,
        # keeps Altinn's fractions.
        headers[f"{amqp.CE_PREFIX_UNDERSCORE}time"] = time.isoformat().replace("+00:00", "Z")
    return aio_pika.Message(
        encoded.application_data,
        content_type=encoded.properties.get(amqp.CONTENT_TYPE_PROPERTY),
        headers=headers or None,
        message_id=cloud.get_id(),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT,
        app_id="altinn-receiver",
    )
