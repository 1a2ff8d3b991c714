"""Observability: JSON log lines, Prometheus metrics and the gauges read from the store at scrape time."""
