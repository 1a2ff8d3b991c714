"""`confirm`: the recipient confirms the correspondence (opt-in; for correspondences that need confirmation).
Altinn requires that it was fetched first; one already confirmed counts as done."""

from __future__ import annotations

from handlers.recipient_action import RecipientAction
from receiver.altinn import CorrespondenceApi


class Confirm(RecipientAction):
    def __init__(self) -> None:
        super().__init__("confirm", CorrespondenceApi.confirm, already=1041, unfetched=1025)
