"""What the deployment tests read: deploy/'s files, and YAML documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO

DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes" / "base"
"""The receiver on SQLite, as a sidecar (`deploy/kubernetes/` applies it; `postgres/` is an overlay of it)."""
EXAMPLE_CONFIG = DEPLOY / "receiver.toml"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


COMPOSE = documents(DEPLOY / "compose.yaml")[0]
