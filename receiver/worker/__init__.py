"""The worker: the dispatcher that claims events from the inbox and runs their pipelines of handlers."""
