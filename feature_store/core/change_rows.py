"""Change points of many entities of one view in one vectorised pass (the batch path).

`compute_rows` runs the core once per entity: a few dozen numpy calls, which on the
small groups most entities have cost far more than the arithmetic. Here the events of
many entities are evaluated together: entity k's times are shifted into a band of its
own, `k * span + 2 + (t - t_min)`, with `span` larger than the time range plus the
longest window, so that no finite window reaches from one band into another, and the
core's `Segments` start each unbounded window and each `count_distinct` value at the
entity's own events. Every row is the row `compute_rows` gives for that entity alone
(tests/unit/feature_store/core/test_change_rows.py checks it against the brute force and against
`compute_rows`). Sums are prefix sums over at most `MAX_PACKED_EVENTS` events, so
rounding stays that of one entity of that size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from feature_store.core.aggregation import Segments
from feature_store.core.columns import AnyArray, EventColumns, FieldSpec, IntArray, column_of
from feature_store.core.kinds import deferred_features, evaluate
from feature_store.core.pending import VectorMasks, pending_of, split_required
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch, differs

MAX_PACKED_EVENTS = 1 << 16
_INT64_HEADROOM = 1 << 62
_MARGIN = 2  # µs between a band's start and its first event (room for `c - 1`)


@dataclass(frozen=True)
class KeyedEvents:
    """Events of many entities of one view, in no particular order, each with its entity
    key: what the batch job groups and ships between stages (compact, columnar)."""

    keys: AnyArray
    times: IntArray
    event_ids: AnyArray
    columns: Mapping[str, AnyArray]

    def __len__(self) -> int:
        return int(self.times.shape[0])

    @classmethod
    def from_records(
        cls, pairs: Sequence[tuple[str, Mapping[str, object]]], specs: Iterable[FieldSpec]
    ) -> KeyedEvents:
        """(entity key, record) pairs; records as `EventColumns.from_records` reads them."""
        records = [record for _, record in pairs]
        return cls(
            keys=np.array([key for key, _ in pairs], dtype=object),
            times=np.array([r["event_time"] for r in records], dtype=np.int64),
            event_ids=np.array([r["event_id"] for r in records], dtype=object),
            columns={s.name: column_of([r.get(s.name) for r in records], s) for s in specs},
        )

    @classmethod
    def concat(cls, parts: Iterable[KeyedEvents]) -> KeyedEvents:
        chunks = list(parts)
        if len(chunks) == 1:
            return chunks[0]
        if not chunks:
            msg = "KeyedEvents.concat needs at least one part"
            raise ValueError(msg)
        return cls(
            keys=np.concatenate([c.keys for c in chunks]),
            times=np.concatenate([c.times for c in chunks]),
            event_ids=np.concatenate([c.event_ids for c in chunks]),
            columns={
                name: np.concatenate([c.columns[name] for c in chunks])
                for name in chunks[0].columns
            },
        )


@dataclass(frozen=True)
class _Grouped:
    """Entities' events, each entity's sorted by (event_time, event_id), first id kept."""

    keys: list[str]
    starts: IntArray  # entity k's events are starts[k]:starts[k + 1]
    events: EventColumns


def _group(keyed: KeyedEvents) -> _Grouped:
    codes, keys = _factorize(keyed.keys)
    kept = _first_copies(codes, keyed.event_ids)
    order = kept[np.lexsort((keyed.times[kept], codes[kept]))]
    order = _ties_by_event_id(order, codes, keyed.times, keyed.event_ids)
    starts = np.searchsorted(codes[order], np.arange(len(keys) + 1)).astype(np.int64)
    events = EventColumns(
        times=keyed.times[order],
        event_ids=keyed.event_ids[order],
        columns={n: c[order] for n, c in keyed.columns.items()},
    )
    return _Grouped(keys=keys, starts=starts, events=events)


def _factorize(keys: AnyArray) -> tuple[IntArray, list[str]]:
    """Codes 0..n-1 of the distinct keys in order of first appearance, and the keys."""
    index: dict[str, int] = {}
    raw = np.fromiter(
        map(index.setdefault, keys.tolist(), itertools.count()), dtype=np.int64, count=keys.shape[0]
    )
    dense = np.zeros(keys.shape[0] + 1, dtype=np.int64)
    dense[np.fromiter(index.values(), dtype=np.int64, count=len(index))] = np.arange(len(index))
    return dense[raw], list(index)


def _first_copies(codes: IntArray, event_ids: AnyArray) -> IntArray:
    """Indices of the first event of each (entity, event_id), in input order."""
    ids = event_ids.tolist()
    if len(set(ids)) == len(ids):
        return np.arange(len(ids), dtype=np.int64)
    first: dict[tuple[int, object], int] = {}
    for i, pair in enumerate(zip(codes.tolist(), ids, strict=True)):
        first.setdefault(pair, i)
    return np.array(sorted(first.values()), dtype=np.int64)


def _ties_by_event_id(
    order: IntArray, codes: IntArray, times: IntArray, event_ids: AnyArray
) -> IntArray:
    """`order` (by entity, then time) with events of one entity and time by event_id."""
    c, t = codes[order], times[order]
    tied = np.flatnonzero((c[1:] == c[:-1]) & (t[1:] == t[:-1]))
    if tied.shape[0] == 0:
        return order
    order = order.copy()
    run_starts = tied[np.concatenate([[True], tied[1:] != tied[:-1] + 1])]
    for first in run_starts.tolist():
        last = first + 1
        while last + 1 < order.shape[0] and c[last + 1] == c[first] and t[last + 1] == t[first]:
            last += 1
        run = order[first : last + 1].tolist()
        order[first : last + 1] = sorted(run, key=lambda i: event_ids[i])
    return order


def _batches(starts: IntArray, span: int) -> Iterable[tuple[int, int]]:
    """Runs of entities [a, b) of at most MAX_PACKED_EVENTS events (one entity at least)
    whose bands fit in int64."""
    most = max(1, _INT64_HEADROOM // span)
    a, n = 0, starts.shape[0] - 1
    while a < n:
        limit = np.searchsorted(starts, starts[a] + MAX_PACKED_EVENTS, side="right") - 1
        b = int(min(max(limit, a + 1), a + most, n))
        yield a, b
        a = b


def compute_rows_many(
    plan: ViewPlan,
    keyed: KeyedEvents,
    start: int | None = None,
    end: int | None = None,
    *,
    defer_vectors: bool = False,
) -> list[RowBatch]:
    """For each entity with any, its change-point rows in [start, end]: what
    `compute_rows(plan, key, its records, start, end)` gives, for all entities at once.
    `defer_vectors` leaves the vector kinds to the kernel stage (`RowBatch.pending`)."""
    if len(keyed) == 0:
        return []
    grouped = _group(keyed)
    times = grouped.events.times
    span = int(times.max() - times.min()) + plan.longest + 2 * _MARGIN
    after = start - 1 if start is not None else None
    out: list[RowBatch] = []
    for a, b in _batches(grouped.starts, span):
        lo, hi = int(grouped.starts[a]), int(grouped.starts[b])
        events = grouped.events.select(slice(lo, hi))
        bounds = grouped.starts[a : b + 1] - lo
        out += _packed_rows(
            plan,
            grouped.keys[a:b],
            bounds,
            events,
            span=span,
            cut=(after, end),
            defer=defer_vectors and bool(deferred_features(plan)),
        )
    return out


@dataclass(frozen=True)
class _Points:
    """Where to evaluate: candidates in (after, end], each entity's first one preceded by
    a lead point 1 µs earlier (compared against, never emitted)."""

    times: IntArray  # packed, sorted
    segment: IntArray  # the entity of each point
    lead: npt.NDArray[np.bool_]


def _points(
    plan: ViewPlan,
    packed: IntArray,
    origin: IntArray,
    span: int,
    cut: tuple[int | None, int | None],
) -> _Points | None:
    cands = _merged_unique([packed + w for w in (0, *plan.windows)])
    segment = cands // span
    real = cands - origin[segment]
    after, end = cut
    wanted = np.ones(cands.shape[0], dtype=bool)
    if after is not None:
        wanted &= real > after
    if end is not None:
        wanted &= real <= end
    cands, segment = cands[wanted], segment[wanted]
    if cands.shape[0] == 0:
        return None
    leads = np.flatnonzero(np.concatenate([[True], segment[1:] != segment[:-1]]))
    lead = np.zeros(cands.shape[0] + leads.shape[0], dtype=bool)
    lead[leads + np.arange(leads.shape[0])] = True
    return _Points(
        times=np.insert(cands, leads, cands[leads] - 1),
        segment=np.insert(segment, leads, segment[leads]),
        lead=lead,
    )


def _packed_rows(
    plan: ViewPlan,
    keys: list[str],
    starts: IntArray,
    events: EventColumns,
    *,
    span: int,
    cut: tuple[int | None, int | None],
    defer: bool = False,
) -> list[RowBatch]:
    n_keys = len(keys)
    of_event = np.repeat(np.arange(n_keys, dtype=np.int64), np.diff(starts))
    origin = np.arange(n_keys, dtype=np.int64) * span + _MARGIN - int(events.times.min())
    packed = events.times + origin[of_event]
    points = _points(plan, packed, origin, span, cut)
    if points is None:
        return []
    columns = dict(events.columns)  # values of event_time stay real; only `times` shift
    columns.setdefault("event_time", events.times.astype(np.float64))
    segments = Segments(
        of_event=of_event,
        point_lo=starts[points.segment],
        band_end=(np.arange(n_keys, dtype=np.int64) + 1) * span,
    )
    shifted = EventColumns(times=packed, event_ids=events.event_ids, columns=columns)
    values = evaluate(plan, shifted, points.times, segments=segments, deferred=defer)
    each = _changed(values, points.times.shape[0])
    changed = np.zeros(points.times.shape[0], dtype=bool)
    for moved in each.values():
        changed |= moved
    at = np.flatnonzero(changed & ~points.lead)
    segment = points.segment[at]
    valid_from = points.times[at] - origin[segment]
    picked = {name: col[at] for name, col in values.items()}
    edges = np.searchsorted(segment, np.arange(n_keys + 1))
    masks, required, before = None, np.zeros(0, dtype=bool), {}
    if defer:  # each row's signature 1 µs before it: the point before (at > 0: leads)
        masks = VectorMasks.of(plan, shifted)
        required = split_required(plan, values, each)[at]
        before = {f.name: values[f.name][at - 1] for f in masks.features}
    out = []
    for k in np.flatnonzero(np.diff(edges)).tolist():
        part = slice(edges[k], edges[k + 1])
        pending = None
        if masks is not None:
            pending = pending_of(
                masks,
                {f.name: picked[f.name][part] for f in masks.features},
                {f.name: before[f.name][part] for f in masks.features},
                required[part],
            )
        out.append(
            RowBatch(
                plan.view,
                keys[k],
                valid_from[part],
                {name: col[part] for name, col in picked.items()},
                pending,
            )
        )
    return out


def _changed(values: Mapping[str, AnyArray], n: int) -> dict[str, npt.NDArray[np.bool_]]:
    """Per feature, whether its value at point i differs from point i - 1 (NaN equals
    NaN)."""
    out = {}
    for name, col in values.items():
        changed = np.zeros(n, dtype=bool)
        changed[1:] = differs(col[1:], col[:-1])
        out[name] = changed
    return out


def _merged_unique(runs: Sequence[IntArray]) -> IntArray:
    """Sorted distinct values of sorted arrays (a stable sort merges runs in linear time;
    `np.unique` hashes, which is far slower on millions of distinct values)."""
    merged: IntArray = np.sort(np.concatenate(runs), kind="stable")
    first: npt.NDArray[np.bool_] = np.concatenate([[True], merged[1:] != merged[:-1]])
    distinct: IntArray = merged[first]
    return distinct
