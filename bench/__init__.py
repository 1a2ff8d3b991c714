"""The benchmarks (see bench/README.md): scripts run as `python bench/X.py`, a package so that mypy checks them and
they share `bench.support`."""
