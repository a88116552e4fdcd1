"""Job metrics: Beam counters, distributions and event-time gauges, mirrored in-process.

Beam's metrics are what Dataflow shows. The local DirectRunner runs streaming bundles on
worker threads whose metric updates it does not collect (only the first bundle's reach
`PipelineResult.metrics()`), so each update is also added to a process-local tally that
the local jobs report from. Both see the same increments.
"""

from __future__ import annotations

import threading

from apache_beam.metrics.metric import Metrics

_LOCK = threading.Lock()
_COUNTS: dict[str, int] = {}  # a plain dict: a Counter's update costs twice as much
_DISTRIBUTIONS: dict[str, list[int]] = {}  # name -> [count, sum, min, max]
_REACHED: dict[str, int] = {}  # name -> the latest event time (µs) reached


class JobCounter:
    def __init__(self, namespace: str, name: str) -> None:
        self.name = name
        self._beam = Metrics.counter(namespace, name)

    def inc(self, n: int = 1) -> None:
        self._beam.inc(n)
        with _LOCK:
            _COUNTS[self.name] = _COUNTS.get(self.name, 0) + n


def add_counts(
    counts: list[tuple[JobCounter, int]], reached: tuple[JobEventTime, int] | None = None
) -> None:
    """`counter.inc(n)` for each pair (and `gauge.reached(micros)` for `reached`), the
    process-local tally updated under one lock (a step adding its bundle's counts at
    once)."""
    for counter, n in counts:
        counter._beam.inc(n)
    if reached is not None:
        reached[0]._beam.set(reached[1])
    _LOCK.acquire()  # (a `with` costs twice as much, once per bundle)
    try:
        for counter, n in counts:
            _COUNTS[counter.name] = _COUNTS.get(counter.name, 0) + n
        if reached is not None:
            name, micros = reached[0].name, reached[1]
            _REACHED[name] = max(micros, _REACHED.get(name, micros))
    finally:
        _LOCK.release()


class JobDistribution:
    def __init__(self, namespace: str, name: str) -> None:
        self.name = name
        self._beam = Metrics.distribution(namespace, name)

    def update(self, value: int) -> None:
        self._beam.update(value)
        with _LOCK:
            held = _DISTRIBUTIONS.setdefault(self.name, [0, 0, value, value])
            held[0] += 1
            held[1] += value
            held[2] = min(held[2], value)
            held[3] = max(held[3], value)


class JobEventTime:
    """An event time (µs) the job has reached, kept as the latest one reported: what a
    fired event-time timer proves of the watermark. Beam's side is a gauge."""

    def __init__(self, namespace: str, name: str) -> None:
        self.name = name
        self._beam = Metrics.gauge(namespace, name)

    def reached(self, micros: int) -> None:
        self._beam.set(micros)
        with _LOCK:
            _REACHED[self.name] = max(micros, _REACHED.get(self.name, micros))


def local_counts() -> dict[str, int]:
    with _LOCK:
        return dict(_COUNTS)


def local_distributions() -> dict[str, dict[str, float]]:
    with _LOCK:
        return {
            name: {"count": c, "mean": round(s / c, 1), "min": lo, "max": hi}
            for name, (c, s, lo, hi) in _DISTRIBUTIONS.items()
            if c
        }


def local_event_time(name: str) -> int | None:
    """The latest event time (µs) reported under `name`, None when none was."""
    with _LOCK:
        return _REACHED.get(name)


def reset_local() -> None:
    with _LOCK:
        _COUNTS.clear()
        _DISTRIBUTIONS.clear()
        _REACHED.clear()
