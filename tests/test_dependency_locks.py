"""The lock files agree with pyproject.toml: every dependency is pinned, by hash, at a version its range allows, and
the runtime lock (the image's) and the dev lock (`make test`'s, with the `otel` extra) never pin one package at two
versions. `make lock` writes both; this catches a pyproject.toml edited without it."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# What the locks are compiled for (Makefile LOCK_TARGET): markers are judged as there.
LOCK_ENVIRONMENT = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux"}


def pins(name: str) -> dict[str, tuple[Version, int]]:
    """Each package of a pip requirements lock file: its pinned version and how many hashes allow it."""
    text = (REPO / name).read_text(encoding="utf-8")
    found: dict[str, tuple[Version, int]] = {}
    for entry in re.split(r"\n(?=\S)", text):
        if entry.startswith("#") or not entry.strip():
            continue
        requirement = Requirement(entry.split("\\")[0].strip())
        [specifier] = requirement.specifier
        assert specifier.operator == "==", f"{name}: {entry.splitlines()[0]} is not pinned"
        found[canonicalize_name(requirement.name)] = (Version(specifier.version), entry.count("--hash=sha256:"))
    return found


def direct(group: list[str]) -> list[Requirement]:
    requirements = [Requirement(line) for line in group]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(LOCK_ENVIRONMENT)]


RUNTIME = direct(PYPROJECT["project"]["dependencies"])
DEV = direct(PYPROJECT["project"]["optional-dependencies"]["dev"])
OTEL = direct(PYPROJECT["project"]["optional-dependencies"]["otel"])
IMAGE_EXTRAS = [requirement for extra in ("postgres", "amqp", "nats")
                for requirement in direct(PYPROJECT["project"]["optional-dependencies"][extra])]  # fmt: skip
LOCK = pins("requirements.lock")
DEV_LOCK = pins("requirements-dev.lock")


def test_every_pin_of_both_locks_is_checked_by_hash() -> None:
    for name, locked in [("requirements.lock", LOCK), ("requirements-dev.lock", DEV_LOCK)]:
        assert {package for package, (_, hashes) in locked.items() if hashes == 0} == set(), name


def test_the_runtime_lock_pins_every_runtime_dependency_inside_its_range() -> None:
    for requirement in RUNTIME:
        version, _ = LOCK[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement} locked at {version}"


def test_the_dev_lock_pins_the_runtime_the_dev_extra_and_the_otel_extra_inside_their_ranges() -> None:
    for requirement in [*RUNTIME, *DEV, *OTEL]:
        version, _ = DEV_LOCK[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement} locked at {version}"


def test_the_image_has_no_opentelemetry() -> None:
    """Traces are an extra: the runtime lock (the image) stays without them."""
    assert not {name for name in LOCK if name.startswith("opentelemetry")}


def test_both_locks_pin_the_postgres_and_broker_extras_inside_their_ranges() -> None:
    """The image runs on either store and can forward to RabbitMQ and NATS by config alone; the tests use all."""
    for requirement in IMAGE_EXTRAS:
        for locked in (LOCK, DEV_LOCK):
            version, _ = locked[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(version, prereleases=True), f"{requirement} locked at {version}"


def test_the_dev_lock_installs_exactly_what_the_image_does_plus_the_dev_tools() -> None:
    differing = {name: (version, DEV_LOCK.get(name, (None, 0))[0]) for name, (version, _) in LOCK.items()}
    assert {name: pair for name, pair in differing.items() if pair[0] != pair[1]} == {}


def test_the_lock_picks_starlette_1() -> None:
    version, _ = LOCK["starlette"]
    assert version.major == 1
