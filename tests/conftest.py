"""Hypothesis profiles: `make test` takes a small sample of every property; `make fuzz` runs them long."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Properties here drive a real server over loopback: no per-example deadline, and module-scoped servers are meant.
settings.register_profile(
    "test", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.register_profile(
    "fuzz",
    parent=settings.get_profile("test"),
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100000")),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "test"))
