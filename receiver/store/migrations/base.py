"""What a migration is: a numbered step of the schema with its SQL per backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ANY_BACKEND = "*"
"""The key of SQL that every backend runs as written."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema: `version` (1, 2, …), a short `name`, and its statements per backend (`"sqlite"`,
    `"postgresql"`, or `ANY_BACKEND`)."""

    version: int
    name: str
    sql: Mapping[str, tuple[str, ...]]

    def statements(self, backend: str) -> tuple[str, ...]:
        """The statements for `backend`: its own, else those for every backend."""
        found = self.sql.get(backend, self.sql.get(ANY_BACKEND))
        if found is None:
            raise LookupError(f"migration {self.version} ({self.name}) has no SQL for the {backend} backend")
        return found
