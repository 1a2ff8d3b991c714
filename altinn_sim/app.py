"""The simulator as one Starlette app: Maskinporten, Altinn Authentication, Events, Correspondence and /_sim/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from altinn_sim import admin, authentication, correspondence, events, maskinporten, sending, subscriptions
from altinn_sim.correspondence_errors import CorrespondenceError, error_handler
from altinn_sim.faults import FaultMiddleware
from altinn_sim.requestlog import RequestLogMiddleware
from altinn_sim.responses import ApiError, api_error_handler
from altinn_sim.settings import SimSettings
from altinn_sim.state import SimState


def create_app(settings: SimSettings | None = None, *, base_url: str) -> Starlette:
    """`base_url` is where clients reach this app (e.g. "http://127.0.0.1:5100"): the platform base URL, and,
    with a slash, the Maskinporten issuer."""
    sim = SimState(settings or SimSettings(), base_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sim.deliverer.start()
        await sim.scheduler.start()
        try:
            yield
        finally:
            await sim.scheduler.stop()
            await sim.deliverer.stop()

    app = Starlette(
        routes=[
            *maskinporten.routes,
            *authentication.routes,
            *subscriptions.routes,
            *events.routes,
            *sending.routes,
            *correspondence.routes,
            *admin.routes,
        ],
        middleware=[
            Middleware(RequestLogMiddleware, log=sim.requests),
            Middleware(FaultMiddleware, faults=sim.faults),
        ],
        exception_handlers={
            ApiError: api_error_handler,
            CorrespondenceError: error_handler,
        },
        lifespan=lifespan,
    )
    app.state.sim = sim
    return app
