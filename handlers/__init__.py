"""The handler plugin API and the built-in handlers (one module each). See docs/handlers.md.

from handlers import BaseHandler, Context, Event, RetryLater, Permanent

`handlers.testing` runs a handler as the dispatcher would, for a plugin's own tests.
"""

from handlers.api import (
    AttachmentFile,
    BaseHandler,
    Context,
    Duration,
    Event,
    Handler,
    OptionError,
    Permanent,
    RetryLater,
    Store,
    setting,
)

__all__ = [
    "AttachmentFile",
    "BaseHandler",
    "Context",
    "Duration",
    "Event",
    "Handler",
    "OptionError",
    "Permanent",
    "RetryLater",
    "Store",
    "setting",
]
