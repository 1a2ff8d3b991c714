"""The background services of a receiver, in start order (they stop in reverse).

The dispatcher, subscriptions and catch-up add themselves here as they are built; see docs/architecture.md.
"""

from __future__ import annotations

from receiver.runtime import Runtime, Service
from receiver.sync.catchup import CatchupService
from receiver.sync.subscriptions import SubscriptionService
from receiver.worker.dispatcher import Dispatcher
from receiver.worker.pipelines import Pipelines, load_pipelines


def build_services(runtime: Runtime, pipelines: Pipelines | None = None) -> list[Service]:
    """The services `runtime`'s config asks for, in the order they must start. `pipelines`: already loaded from the
    same config (the serve command checks them before starting), else loaded here."""
    if pipelines is None:
        pipelines = load_pipelines(runtime.config)
    return [Dispatcher(pipelines, runtime.config.dispatch), SubscriptionService(), CatchupService()]
