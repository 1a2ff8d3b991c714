"""`confirm`: the recipient confirms the correspondence (opt-in; for correspondences that need confirmation).
Altinn requires that it was fetched first; one already confirmed counts as done."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers.api import Context
from handlers.mark_as_read import RecipientAction


class Confirm(RecipientAction):
    name = "confirm"
    already = 1041
    unfetched = 1025

    def action(self, ctx: Context) -> Callable[[str], Awaitable[None]]:
        assert ctx.altinn is not None
        return ctx.altinn.correspondence.confirm
