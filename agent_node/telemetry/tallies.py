"""Counters and histograms counted in plain Python, read by Prometheus at
scrape time.

Why not ``prometheus_client``'s own: each of its ``labels(…).inc()`` or
``observe()`` takes a lock and walks its children — a few microseconds,
paid on every commit, claim and request of the node's event loop (a no-op
workflow step costs the node ~75 µs in all; its metrics must cost a few).
A node counts on its event loop only (commit observers, claims, requests
and scrapes all run there), so a dict of ints needs no lock; the
registry asks :class:`Tallies` for its families when it is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Count", "Tallies", "Timing"]

#: Label values a metric keeps apart at most (its labels come from closed
#: sets or from the node's configuration; this bounds a mistake).
MAX_SERIES = 2000
#: Where values past ``MAX_SERIES`` are counted.
_OTHER = "_other"


class Count:
    """A counter by labels (exposed as ``<name>_total``)."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.values: dict[tuple[str, ...], float] = {}
        if not self.labels:  # one series, shown from the start (as prometheus_client does)
            self.values[()] = 0

    def add(self, labels: tuple[str, ...] = (), amount: float = 1) -> None:
        values = self.values
        if labels not in values and len(values) >= MAX_SERIES:
            labels = (_OTHER,) * len(labels)
        values[labels] = values.get(labels, 0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in sorted(self.values.items()):
            family.add_metric(list(labels), value)
        return family


class Timing:
    """A histogram by labels, of ``buckets`` (upper bounds, ascending)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.bounds = tuple(float(b) for b in buckets)
        #: Per labels: the count in each bucket (not cumulative), +Inf last, then the sum.
        self.values: dict[tuple[str, ...], list[float]] = {}
        if not self.labels:  # one series, shown from the start (as prometheus_client does)
            self.values[()] = [0] * (len(self.bounds) + 2)

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        row = self.values.get(labels) or self.row(labels)
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def observer(self, labels: tuple[str, ...] = ()) -> Callable[[float, int], None]:
        """:meth:`observe` into ``labels``' series, found once, ``count`` times
        at once: for a hot path (a commit's wait, told by the store on every
        batch it commits, with how many writes waited)."""
        row, bounds = self.row(labels), self.bounds

        def observe(value: float, count: int = 1) -> None:
            row[bisect_left(bounds, value)] += count
            row[-1] += value * count

        return observe

    def row(self, labels: tuple[str, ...] = ()) -> list[float]:
        """The series of ``labels``, for a hot path to count into as
        :meth:`observe` does (``row[bisect_left(bounds, value)] += 1``,
        ``row[-1] += value``) without looking it up each time."""
        found = self.values.get(labels)
        if found is None:
            if len(self.values) >= MAX_SERIES:
                labels = (_OTHER,) * len(labels)
            found = self.values.setdefault(labels, [0] * (len(self.bounds) + 2))
        return found

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        edges = [repr(b) for b in self.bounds] + ["+Inf"]  # as prometheus_client writes them
        for labels, row in sorted(self.values.items()):
            running, buckets = 0.0, []
            for edge, count in zip(edges, row, strict=False):
                running += count
                buckets.append((edge, running))
            family.add_metric(list(labels), buckets, row[-1])
        return family


class Tallies(Collector):
    """The tallies of one registry, collected when it is scraped."""

    def __init__(self) -> None:
        self._all: list[Count | Timing] = []

    def count(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Count:
        found = Count(name, documentation, labels)
        self._all.append(found)
        return found

    def timing(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> Timing:
        found = Timing(name, documentation, labels, buckets=buckets)
        self._all.append(found)
        return found

    def describe(self) -> Iterable[Metric]:
        return [tally.family() for tally in self._all]

    def collect(self) -> Iterable[Metric]:
        return [tally.family() for tally in self._all]
