"""Talking to Altinn: the Maskinporten grant, the token exchange and cache, and the Events and Correspondence APIs.

clients = AltinnClients.from_config(config)
async with clients:
    page = await clients.events.pull_events("urn:altinn:resource:my-resource", "0")
"""

from receiver.altinn.clients import AltinnClients
from receiver.altinn.correspondence_api import AttachmentUnavailable, CorrespondenceApi
from receiver.altinn.errors import AltinnError, PermanentError, TransientError
from receiver.altinn.http import parse_retry_after
from receiver.altinn.models import Attachment, Correspondence, EventPage, Subscription, Token
from receiver.altinn.partfile import MAX_DOWNLOAD_NAME_BYTES

__all__ = [
    "MAX_DOWNLOAD_NAME_BYTES",
    "AltinnClients",
    "AltinnError",
    "Attachment",
    "AttachmentUnavailable",
    "Correspondence",
    "CorrespondenceApi",
    "EventPage",
    "PermanentError",
    "Subscription",
    "Token",
    "TransientError",
    "parse_retry_after",
]
