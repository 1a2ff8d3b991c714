"""The background services of a receiver, in start order (they stop in reverse).

The dispatcher, subscriptions and catch-up add themselves here as they are built; see docs/architecture.md.
"""

from __future__ import annotations

from receiver.catchup import CatchupService
from receiver.dispatch import Dispatcher
from receiver.runtime import Runtime, Service
from receiver.subscriptions import SubscriptionService


def build_services(runtime: Runtime) -> list[Service]:
    """The services `runtime`'s config asks for, in the order they must start."""
    services: list[Service] = []
    services += [Dispatcher.from_config(runtime.config), SubscriptionService(), CatchupService()]
    return services
