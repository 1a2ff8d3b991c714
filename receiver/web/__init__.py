"""The web edge: the webhook endpoint and CloudEvent parsing."""
