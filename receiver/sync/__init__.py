"""Altinn sync: owning the Events subscriptions and catching up through the pull API (one runner at a time)."""
