"""The console's pages, one module per subject, each exposing `routes` (receiver/console/app.py gathers them)."""
