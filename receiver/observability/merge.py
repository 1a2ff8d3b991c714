"""Two processes' Prometheus expositions as one: what `/metrics` answers on the port of `serve`, whose webhook and
worker are two processes (docs/operations.md#roles).

Both processes register the same families (each has a whole `Metrics`), so the texts cannot just be put one after
the other: Prometheus refuses a family that appears twice. Counters, histograms and summaries are added sample by
sample (pushes are counted by the webhook, catch-up pages and Altinn calls by the worker: the sum is the service's
count). Gauges are the first exposition's (the webhook's) wherever it has the sample: the store-level gauges are the
same in both, and `process_*` are the process that answers; the second's gauges that the first lacks (the
dispatcher's) are added as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

ADDED = frozenset({"counter", "histogram", "summary"})


def merge_expositions(first: str, second: str) -> bytes:
    """One exposition holding every family of `first` and `second` (text format 0.0.4), the rules above."""
    families = {family.name: family for family in text_string_to_metric_families(first)}
    for other in text_string_to_metric_families(second):
        mine = families.setdefault(other.name, other)
        if mine is not other:
            _merge_into(mine, other)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return generate_latest(registry)


def _merge_into(mine: Metric, other: Metric) -> None:
    where = {(sample.name, tuple(sorted(sample.labels.items()))): n for n, sample in enumerate(mine.samples)}
    for sample in other.samples:
        n = where.get((sample.name, tuple(sorted(sample.labels.items()))))
        if n is None:
            mine.samples.append(sample)
        elif mine.type in ADDED and not sample.name.endswith("_created"):
            mine.samples[n] = mine.samples[n]._replace(value=mine.samples[n].value + sample.value)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
