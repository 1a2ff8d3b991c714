"""The project's maintenance scripts (run with `python -m tools.NAME`; not part of the installed package)."""
