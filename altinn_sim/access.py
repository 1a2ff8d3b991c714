"""Who may see what: the simulator's stand-in for Altinn Authorization's XACML decisions.

Simplified: a service owner (a token with altinn:serviceowner for the organisation that owns the resource) may
see every event of its resources; anyone else only events whose subject is the organisation it acts for.
"""

from __future__ import annotations

from typing import Any

from altinn_sim.authentication import Caller
from altinn_sim.resources import RESOURCE_PREFIX, Resources


def owns(caller: Caller, resources: Resources, resource_id: str, *, claim: bool = False) -> bool:
    """True if the caller is the resource's service owner (with `claim`, an unowned resource becomes its)."""
    if not caller.service_owner:
        return False
    if claim:
        return resources.claim(resource_id, caller.org)
    return resources.owner(resource_id) == caller.org


def may_see(caller: Caller, resources: Resources, event: dict[str, Any]) -> bool:
    resource_id = str(event.get("resource", "")).removeprefix(RESOURCE_PREFIX)
    return owns(caller, resources, resource_id) or event.get("subject") == caller.party_subject
