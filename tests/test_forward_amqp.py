"""What only `forward_amqp` does, against the machine's RabbitMQ through `altinn-receiver serve`: `declare` makes the
exchange a durable topic exchange, and with `mandatory` a message no queue takes is retried with a reason that names
the exchange and the routing key, until a queue is bound."""

from __future__ import annotations

import uuid
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractChannel

from altinn_sim import running_simulator
from tests.broker_support import SIM, AmqpTarget, Forwarding, amqp_url, arrived, correspondence_event, on_channel
from tests.dispatch_support import query
from tests.support import wait_until


def test_an_unroutable_message_is_retried_naming_exchange_and_routing_key_until_a_queue_is_bound(
    tmp_path: Path,
) -> None:
    name = f"test-{uuid.uuid4().hex[:12]}"
    options = {
        "use": "forward_amqp",
        "url": amqp_url(),
        "exchange": name,
        "declare": True,
        "routing_key": "altinn.{type}",
    }

    async def bind(channel: AbstractChannel) -> None:
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True, passive=True)
        queue = await channel.declare_queue(name, arguments={"x-expires": 300_000})
        await queue.bind(exchange, "altinn.#")

    async def delete(channel: AbstractChannel) -> None:
        await channel.queue_delete(name)
        await channel.exchange_delete(name)

    try:
        with running_simulator(SIM) as sim, Forwarding(sim, tmp_path, {"to_rabbit": options}) as forwarding:
            [correspondence] = forwarding.correspondences(1)
            event = correspondence_event(correspondence)
            forwarding.push(event)
            [row] = wait_until(
                lambda: (
                    (rows := query(forwarding.store, "SELECT status, last_error FROM inbox"))[0]["status"] == "retrying"
                    and rows
                ),
                message="the unroutable event to be retried",
            )
            on_channel(bind)  # passive: the handler declared the exchange
            forwarding.wait_done([event["id"]])
            delivered = arrived(AmqpTarget(name, name, "altinn.{type}"), 1)
    finally:
        on_channel(delete)
    key = f"altinn.{event['type']}"
    assert row["last_error"] == (
        f"to_rabbit: no queue is bound to exchange {name!r} with routing key {key!r}: the broker returned the message"
        " (mandatory)"
    )
    assert [(message.id, message.address) for message in delivered] == [(event["id"], key)]
