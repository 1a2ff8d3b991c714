"""Hypothesis profiles (`make test` takes a small sample of every property; `make fuzz` runs them long), the store
fixtures that run a test on each backend (tests/store_backends.py), and the default simulator of a module (`sim`, with
its registered `owner`); a module that needs other simulator settings defines its own `sim`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from receiver.config import StoreConfig
from receiver.onboarding.demo import Identity, register_identity
from tests.store_backends import (
    BACKENDS,
    POSTGRES_SERVER,
    close_sessions,
    drop_database,
    new_database,
    new_schema,
    new_store_config,
)

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


@pytest.fixture(autouse=True)
def _store_sessions() -> Iterator[None]:
    """The PostgreSQL stores a test's helpers opened are closed when it ends (tests/store_backends.py: `Session`)."""
    yield
    close_sessions()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test run's own on the PostgreSQL at 127.0.0.1:5432, dropped at the end. The tests need
    the server: without it they fail (`.ci/run` starts it), never skip."""
    try:
        url = new_database()
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_SERVER} ({' '.join(str(exc).split())}): the store tests run on"
            " it too; start it (`.ci/run` does: pg_ctlcluster <version> main start)",
            pytrace=False,
        )
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def store_url(postgres_database: str) -> str:
    """A fresh, empty PostgreSQL schema's URL, for a test of PostgreSQL alone."""
    return new_schema(postgres_database)


@pytest.fixture(params=BACKENDS)
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> StoreConfig:
    """The store of a test that runs on each backend: an SQLite file in `tmp_path`, or a fresh PostgreSQL schema."""
    database = request.getfixturevalue("postgres_database") if request.param == "postgresql" else ""
    return new_store_config(request.param, tmp_path, database)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    """A simulator of the module's own, with no seeded correspondences; 10000x: Altinn's 30 s pull lag is 3 ms."""
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as running:
        yield running


@pytest.fixture(scope="module")
def owner(sim: RunningSimulator, tmp_path_factory: pytest.TempPathFactory) -> Identity:
    """A service owner registered with `sim` (Maskinporten client and key)."""
    return register_identity(sim, tmp_path_factory.mktemp("owner"))
