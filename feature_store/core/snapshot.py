"""Snapshots of the unbounded features: what a key's running base (`running.RunningState.base`,
in the accumulators' own `dump` form) holds over the events up to a cut, so that a
streaming job starts from it plus the archive after the cut instead of all of history.

Each kind's summary is a monoid over events: two summaries of disjoint event sets
combine into the summary of their union (`combine`), so a snapshot is folded in any
order (Beam combines it per key) and added to a state that already holds live events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Summary = Sequence[Any]  # one accumulator's `dump()`
Base = tuple[tuple[Any, ...], ...]  # one summary per unbounded feature, in plan order

DAY_US = 86_400 * 1_000_000
SNAPSHOT_LATENESS_US = DAY_US
"""The lateness a snapshot leaves room for: a snapshot taken at the end `E` of a
backfill folds the events up to `E - longest window - 1 day`, so a stream starting at
or after `E` with an allowed lateness up to a day reads no event twice."""


def snapshot_cut(longest_us: int, end_us: int, lateness_us: int = SNAPSHOT_LATENESS_US) -> int:
    """The event time up to which a backfill ending at `end_us` folds a view's events
    (its longest window `longest_us`), rounded down to a UTC day (the archive's partition)."""
    cut = end_us - longest_us - lateness_us
    return cut - cut % DAY_US


def _multiset(a: Summary, b: Summary) -> tuple[Any, ...]:
    counts: dict[Any, int] = {}
    for key, n in (*a, *b):
        counts[key] = counts.get(key, 0) + int(n)
    return tuple(counts.items())


def combine(kind: str, a: Summary, b: Summary) -> tuple[Any, ...]:
    """The summary of the union of two disjoint event sets, from each one's summary."""
    if not a or not b:
        return tuple(a or b)
    if kind == "count":
        return (int(a[0]) + int(b[0]),)
    if kind == "share":
        return (int(a[0]) + int(b[0]), int(a[1]) + int(b[1]))
    if kind in ("sum", "mean", "stddev"):
        return (
            int(a[0]) + int(b[0]),
            str(int(a[1]) + int(b[1])),
            str(int(a[2]) + int(b[2])),
        )
    if kind in ("count_distinct", "max", "min"):
        return _multiset(a, b)
    if kind == "last":
        newer = a if (int(a[0]), str(a[1])) >= (int(b[0]), str(b[1])) else b
        return tuple(newer)
    msg = f"aggregation kind {kind!r} has no snapshot summary"
    raise ValueError(msg)


def combine_bases(kinds: Sequence[str], a: Sequence[Summary], b: Sequence[Summary]) -> Base:
    """`combine` for each unbounded feature of a view (`kinds` in plan order)."""
    if len(a) != len(kinds) or len(b) != len(kinds):
        msg = f"snapshot bases must hold {len(kinds)} summaries ({list(kinds)}), got {a!r}, {b!r}"
        raise ValueError(msg)
    return tuple(combine(k, x, y) for k, x, y in zip(kinds, a, b, strict=True))
