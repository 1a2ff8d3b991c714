"""The handler plugin API and the built-in handlers (one module each). See docs/handlers.md.

from handlers import Handler, Event, Context, RetryLater, Permanent
"""

from handlers.api import Context, Duration, Event, Handler, OptionError, Permanent, RetryLater, setting

__all__ = ["Context", "Duration", "Event", "Handler", "OptionError", "Permanent", "RetryLater", "setting"]
