"""`mark_as_read`: the recipient marks the correspondence as read (opt-in). Altinn requires that it was fetched
first, so put `fetch_correspondence` before it; a correspondence already read counts as done."""

from __future__ import annotations

from handlers.recipient_action import RecipientAction
from receiver.altinn import CorrespondenceApi


class MarkAsRead(RecipientAction):
    def __init__(self) -> None:
        super().__init__("mark_as_read", CorrespondenceApi.mark_as_read, already=1040, unfetched=1024)
