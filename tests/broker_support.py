"""Helpers for the broker handlers' tests, over real connections: RabbitMQ (127.0.0.1:5672, guest/guest) and NATS
with JetStream (127.0.0.1:4222) on this machine, each test with an exchange, queue or stream of its own that it
removes afterwards; a TCP relay that can be absent and come later, or be slow; and `altinn-receiver serve` (a
subprocess) forwarding the correspondences it fetches from the simulator.

`.ci/run` makes sure both brokers run; these helpers fail, never skip, when one does not answer."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aio_pika
import httpx
import nats
from aio_pika.abc import AbstractChannel
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from altinn_sim import RunningSimulator, SimSettings
from receiver.onboarding.demo import ReceiverSetup, register_identity
from receiver.server_thread import free_port
from tests.dispatch_support import FAST_RETRIES, RECIPIENT_ORG, RECIPIENT_SCOPES, RESOURCE, SENDER_ORG, statuses
from tests.ingest_support import ServeProcess, push, webhook
from tests.pipeline_support import pipelines_toml
from tests.support import wait_until

T = TypeVar("T")

AMQP_PORT = 5672
NATS_PORT = 4222
SIM = SimSettings(time_scale=1000, seed_correspondences=0)
READ = "no.altinn.correspondence.correspondencereceiverread"
PUBLISHED = "no.altinn.correspondence.correspondencepublished"
CORRESPONDENCE_SOURCE = "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence"


def amqp_url(port: int = AMQP_PORT, password: str = "guest") -> str:
    return f"amqp://guest:{password}@127.0.0.1:{port}/"


def nats_url(port: int = NATS_PORT, credentials: str = "") -> str:
    return f"nats://{credentials + '@' if credentials else ''}127.0.0.1:{port}"


@dataclass(frozen=True)
class Delivered:
    """One message as a consumer reads it: where it went (routing key or subject), the id consumers deduplicate by
    (AMQP `message_id`, `Nats-Msg-Id`), its content type (AMQP `content_type`, NATS `Content-Type`), its headers
    (AMQP headers, NATS headers) and body."""

    address: str
    id: str
    content_type: str | None
    headers: Mapping[str, Any]
    body: bytes
    persistent: bool | None = None
    """AMQP delivery mode 2 (None for NATS)."""

    def json(self) -> Any:
        return json.loads(self.body)


class Target(Protocol):
    """Where a broker handler publishes to in a test: its options, and what arrived there so far."""

    broker_port: int

    def options(self, port: int | None = None, **more: Any) -> dict[str, Any]:
        """A `[handlers.NAME]` section that publishes here, through `port` (a relay) instead of the broker's own."""
        ...

    def address_of(self, event: Mapping[str, Any]) -> str:
        """The routing key or subject the template makes of `event`."""
        ...

    def delivered(self) -> list[Delivered]: ...


def arrived(target: Target, count: int) -> list[Delivered]:
    """What reached `target`, once at least `count` messages have."""

    def enough() -> list[Delivered] | None:
        found = target.delivered()
        return found if len(found) >= count else None

    result: list[Delivered] = wait_until(enough, message=f"{count} messages to arrive")
    return result


def run(work: Awaitable[T]) -> T:
    """Run a broker client's coroutine from a synchronous test."""

    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await work

    return asyncio.run(bounded())


async def _on_channel(work: Callable[[AbstractChannel], Awaitable[T]]) -> T:
    connection = await aio_pika.connect(amqp_url())
    try:
        return await work(await connection.channel())
    finally:
        await connection.close()


def on_channel(work: Callable[[AbstractChannel], Awaitable[T]]) -> T:
    """`work` on a channel of a connection of its own to the machine's RabbitMQ."""
    return run(_on_channel(work))


@dataclass
class AmqpTarget:
    """A durable topic exchange of the test's own (`exchange`) with a queue bound to every routing key, or the
    default exchange (`exchange` "") with the queue's name as the routing key."""

    exchange: str
    queue: str
    routing_key: str
    received: list[Delivered] = field(default_factory=list)
    broker_port: int = AMQP_PORT

    def options(self, port: int | None = None, **more: Any) -> dict[str, Any]:
        return {"use": "forward_amqp", "url": amqp_url(port or AMQP_PORT), "exchange": self.exchange,
                "routing_key": self.routing_key, "timeout": "5s", **more}  # fmt: skip

    def address_of(self, event: Mapping[str, Any]) -> str:
        return self.routing_key.format(resourceinstance=event["resourceinstance"])

    def delivered(self) -> list[Delivered]:
        """Everything that arrived so far (taken off the queue, and kept here)."""

        async def take(channel: AbstractChannel) -> list[Delivered]:
            queue = await channel.get_queue(self.queue, ensure=False)
            taken = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                taken.append(
                    Delivered(
                        message.routing_key or "",
                        message.message_id or "",
                        message.content_type,
                        dict(message.headers or {}),
                        message.body,
                        message.delivery_mode == 2,
                    )
                )
            return taken

        self.received += on_channel(take)
        return list(self.received)


@contextmanager
def amqp_target(
    routing_key: str = "altinn.{resourceinstance}", *, default_exchange: bool = False
) -> Iterator[AmqpTarget]:
    """A queue (and an exchange, unless `default_exchange`) of this test's own, deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"

    async def declare(channel: AbstractChannel) -> None:
        queue = await channel.declare_queue(name, arguments={"x-expires": 300_000})
        if not default_exchange:
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
            await queue.bind(exchange, "#")

    async def delete(channel: AbstractChannel) -> None:
        await channel.queue_delete(name)
        if not default_exchange:
            await channel.exchange_delete(name)

    on_channel(declare)
    try:
        yield AmqpTarget("" if default_exchange else name, name, name if default_exchange else routing_key)
    finally:
        on_channel(delete)


async def _on_jetstream(work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    client = await nats.connect(nats_url(), allow_reconnect=False)
    try:
        return await work(client.jetstream())
    finally:
        await client.close()


def on_jetstream(work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    """`work` on the JetStream of a connection of its own to the machine's NATS server."""
    return run(_on_jetstream(work))


@dataclass
class NatsTarget:
    """A stream of the test's own, taking every subject under `prefix`."""

    stream: str
    prefix: str
    subject: str
    broker_port: int = NATS_PORT

    def options(self, port: int | None = None, **more: Any) -> dict[str, Any]:
        return {"use": "forward_nats", "url": nats_url(port or NATS_PORT), "subject": self.subject,
                "stream": self.stream, "timeout": "5s", **more}  # fmt: skip

    def address_of(self, event: Mapping[str, Any]) -> str:
        return self.subject.format(resourceinstance=event["resourceinstance"])

    def delivered(self) -> list[Delivered]:
        """Every message the stream holds, in order."""

        async def read(jetstream: JetStreamContext) -> list[Delivered]:
            info = await jetstream.stream_info(self.stream)
            found = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
                message = await jetstream.get_msg(self.stream, seq)
                headers = dict(message.headers or {})
                found.append(
                    Delivered(
                        message.subject or "",
                        headers.get("Nats-Msg-Id", ""),
                        headers.get("Content-Type"),
                        headers,
                        message.data or b"",
                    )
                )
            return found

        return on_jetstream(read)


@contextmanager
def nats_target(
    subject: str = "altinn.{resourceinstance}", *, duplicate_window: float | None = None
) -> Iterator[NatsTarget]:
    """A stream of this test's own over `<prefix>.>`, deleted afterwards; `subject` is put under the prefix."""
    name = f"test-{uuid.uuid4().hex[:12]}"

    async def create(jetstream: JetStreamContext) -> None:
        config = StreamConfig(name=name, subjects=[f"{name}.>"])
        if duplicate_window is not None:
            config.duplicate_window = duplicate_window
        await jetstream.add_stream(config)

    async def delete(jetstream: JetStreamContext) -> None:
        await jetstream.delete_stream(name)

    on_jetstream(create)
    try:
        yield NatsTarget(name, name, f"{name}.{subject}")
    finally:
        on_jetstream(delete)


TARGETS: dict[str, Callable[[], AbstractContextManager[Target]]] = {"amqp": amqp_target, "nats": nats_target}


class TcpRelay:
    """A TCP relay from a port of its own to a broker on this machine: nothing listens until `start` (a broker that
    is not reachable yet), `stop` cuts every connection, and with `delay` each chunk waits that long before it is
    passed on (a slow link, to keep publishes in flight)."""

    def __init__(self, target_port: int, delay: float = 0.0) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.delay = delay
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> TcpRelay:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        self._spawn(self._accept, listener)
        return self

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # stopped
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(): closing alone does not
            self._listener.close()
            self._listener = None
        for end in self._sockets:
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._sockets, self._threads = [], []

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Forwarding:
    """`altinn-receiver serve` (a subprocess) against the simulator, whose pipeline for correspondence events is
    `fetch_correspondence` and then `handlers` (name -> its `[handlers.NAME]` section): as the service owner of
    RESOURCE, or as the recipient RECIPIENT_ORG (`download_attachments` writes to `files` then). Events are pushed to
    its webhook by the test, for correspondences the simulator holds."""

    def __init__(
        self,
        sim: RunningSimulator,
        tmp_path: Path,
        handlers: Mapping[str, Mapping[str, Any]],
        *,
        role: str = "service-owner",
        dispatch: Mapping[str, Any] | None = None,
    ) -> None:
        self.sim = sim
        self.files = tmp_path / "files"
        recipient = role == "recipient"
        sim.set_resource_owner(RESOURCE, SENDER_ORG)
        identity = (
            register_identity(sim, tmp_path, org=RECIPIENT_ORG, service_owner=None, scopes=RECIPIENT_SCOPES)
            if recipient
            else register_identity(sim, tmp_path)
        )
        steps = ["fetch_correspondence", *(["download_attachments"] if recipient else []), *handlers]
        sections = {**({"download_attachments": {"dir": str(self.files)}} if recipient else {}), **handlers}
        self.serve = ServeProcess(tmp_path)
        pipelines = pipelines_toml((["no.altinn.correspondence.*"], steps), handlers=sections)
        setup = ReceiverSetup(sim.url, identity, self.serve.store, [], port=self.serve.port, role=role,
                              catchup={"enabled": False}, dispatch={**FAST_RETRIES, **(dispatch or {})},
                              extra=pipelines)  # fmt: skip
        setup.write(self.serve.config)
        self.secret = setup.secret
        self.store = self.serve.store

    def __enter__(self) -> Forwarding:
        self.serve.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.serve.stop()

    def correspondences(self, count: int, *, attachments: int = 0) -> list[str]:
        """New correspondences to RECIPIENT_ORG whose events the simulator keeps to itself; their ids."""
        spec = {"resource_id": RESOURCE, "recipient": RECIPIENT_ORG, "attachments": attachments}
        response = self.sim.admin.post("/correspondences", params={"push": "false"}, json=[spec] * count)
        response.raise_for_status()
        ids: list[str] = response.json()["ids"]
        return ids

    def push(self, *events: Mapping[str, Any]) -> None:
        with httpx.Client(timeout=10) as client:
            for event in events:
                assert push(client, webhook(self.serve.url, self.secret), dict(event)).status_code == 200

    def statuses(self) -> dict[str, str]:
        return statuses(self.store)

    def wait_done(self, ids: Sequence[str], timeout: float = 30.0) -> None:
        def done() -> bool:
            now = self.statuses()
            dead = {i: s for i, s in now.items() if s == "dead"}
            assert not dead, f"dead events: {dead}"
            return all(now.get(i) == "done" for i in ids)

        wait_until(done, timeout=timeout, message=f"{len(ids)} events to be done")


def correspondence_event(
    correspondence_id: str, *, type: str = READ, second: int = 0, **attributes: Any
) -> dict[str, Any]:
    """An event of `correspondence_id` as Altinn pushes it, `second` seconds into the minute it happened in; `None`
    drops an attribute."""
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": CORRESPONDENCE_SOURCE,
        "type": type,
        "subject": f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}",
        "time": f"2026-01-05T10:00:{second:02d}.123456Z",
        "resource": RESOURCE,
        "resourceinstance": correspondence_id,
        **attributes,
    }
    return {name: value for name, value in event.items() if value is not None}
