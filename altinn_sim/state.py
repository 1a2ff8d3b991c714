"""Everything one simulator instance holds, in memory; `app.state.sim` is the one instance."""

from __future__ import annotations

from typing import Any

from altinn_sim.authentication import Authentication
from altinn_sim.clock import Clock
from altinn_sim.correspondence_model import Correspondences
from altinn_sim.delivery import Deliverer
from altinn_sim.events import Events
from altinn_sim.faults import FaultSet
from altinn_sim.maskinporten import Maskinporten
from altinn_sim.requestlog import RequestLog
from altinn_sim.resources import Resources
from altinn_sim.scheduler import Scheduler
from altinn_sim.seed import seed
from altinn_sim.settings import SimSettings
from altinn_sim.subscriptions import Subscriptions
from receiver.observability.logs import redact


class SimState:
    def __init__(self, settings: SimSettings, base_url: str) -> None:
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.clock = Clock(settings.time_scale)
        self.maskinporten = Maskinporten(self.base_url + "/", settings.maskinporten_token_lifetime)
        self.authentication = Authentication(self.base_url, self.maskinporten, settings.altinn_token_lifetime)
        self.resources = Resources()
        self.subscriptions = Subscriptions()
        self.deliverer = Deliverer(self.clock, settings.effective_push_timeout)
        self.events = Events(
            self.base_url + "/events/api/v1/",
            self.clock,
            settings.pull_lag,
            self.subscriptions,
            self.resources,
            self.deliverer,
            settings.schedule,
        )
        self.scheduler = Scheduler(self.clock)
        self.correspondences = Correspondences(self.events, self.base_url, self.scheduler)
        seed(self.correspondences, self.resources, settings.seed_correspondences)
        self.faults = FaultSet(settings.faults)
        self.requests = RequestLog()

    def snapshot(self) -> dict[str, Any]:
        """What `GET /_sim/state` shows."""
        schedule = self.settings.schedule
        return {
            "push_schedule": {
                "name": schedule.name,
                "push_delays": list(schedule.push_delays),
                "validation_delays": list(schedule.validation_delays),
                "push_timeout": self.settings.effective_push_timeout,
                "time_scale": self.settings.time_scale,
            },
            "clients": [
                {"client_id": c.client_id, "org": c.org, "scopes": sorted(c.scopes), "service_owner": c.service_owner,
                 "kids": [k.kid for k in c.keys]}
                for c in self.maskinporten.clients.values()
            ],
            "resources": dict(self.resources.owners),
            "correspondences": [
                {"id": c.id, "resource_id": c.resource_id, "recipient": c.recipient, "status": c.current.status,
                 "title": c.title, "attachments": len(c.attachments)}
                for c in self.correspondences.items.values()
            ],
            "subscriptions": [
                {**s.to_json(), "endPoint": redact(s.endpoint)} for s in self.subscriptions.items.values()
            ],
            "events": [s.event for s in self.events.log],
            "deliveries": [d.to_json() for d in self.deliverer.deliveries],
            "dead_letters": [d.to_json() for d in self.deliverer.dead_letters],
            "faults": [f.to_json() for f in self.faults.rules],
            "requests": list(self.requests.entries),
        }  # fmt: skip
