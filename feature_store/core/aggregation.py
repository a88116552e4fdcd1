"""Vectorised evaluation of a view's features at many points in time.

For points `c` (µs), a feature with window W aggregates the view's events with
`c - W < event_time <= c`. With events sorted by time that is the index range
`[lo, hi)` where `hi = searchsorted(times, c, right)` and
`lo = searchsorted(times, c - W, right)`, so every kind is a few numpy operations over
prefix arrays: no per-point Python loop for the scalar kinds.

`base` carries a summary of events already dropped from the state (streaming): only
unbounded features read it. `segments` lets one call evaluate many entities at once (the
batch path): each entity's times lie in a band of their own, far enough from the others
that no finite window reaches across, and unbounded windows start at the entity's first
event. Outputs are float64 columns with NaN for null (vectors:
2-D float32 with NaN rows); counts are never null.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from feature_store.core.columns import AnyArray, EventColumns, FloatArray, IntArray
from feature_store.core.plan import FeaturePlan, ViewPlan
from feature_store.definitions import Condition
from feature_store.errors import FeatureDefinitionError

if TYPE_CHECKING:
    from feature_store.core.linalg import NewestStats

BoolArray = npt.NDArray[np.bool_]
Base = Mapping[str, tuple[Any, ...]]


@dataclass(frozen=True)
class Segments:
    """Several entities in one evaluation: which entity each event and point belongs to.

    `of_event[i]` is event i's entity; `point_lo[j]` is the index of the first event of
    point j's entity (where its unbounded windows start); `band_end[k]` is a time past
    every point of entity k and before every point of entity k + 1.
    """

    of_event: IntArray
    point_lo: IntArray
    band_end: IntArray


class Evaluation:
    """Shared per-call caches: window bounds and condition masks."""

    def __init__(
        self,
        plan: ViewPlan,
        events: EventColumns,
        points: IntArray,
        base: Base,
        segments: Segments | None = None,
    ) -> None:
        if segments is not None and base:
            msg = f"view `{plan.view}`: entities evaluated together carry no folded base"
            raise FeatureDefinitionError(msg)
        self.plan = plan
        self.events = events
        self.points = points
        self.base = base
        self.segments = segments
        self._bounds: dict[int | None, tuple[IntArray, IntArray]] = {}
        self._masks: dict[Condition | None, BoolArray] = {}
        self.view_mask = self._condition(plan.where)

    def column(self, name: str) -> AnyArray:
        """A field's values; `event_time` is the times unless a column of them is given
        (segments shift the times, not the values)."""
        if name == "event_time" and name not in self.events.columns:
            return self.events.times.astype(np.float64)
        return self.events.columns[name]

    def _condition(self, cond: Condition | None) -> BoolArray:
        if cond is None:
            return np.ones(len(self.events), dtype=bool)
        col = self.column(cond.field)
        mask = np.zeros(len(self.events), dtype=bool)
        for value in cond.values:
            mask |= col == value
        return mask

    def mask(
        self, feature: FeaturePlan, *, share: bool = False, non_null: bool = False
    ) -> BoolArray:
        key = feature.share_where if share else feature.where
        if key not in self._masks:
            self._masks[key] = self.view_mask & self._condition(key)
        mask = self._masks[key]
        if share:
            mask = mask & self.mask(feature)
        if non_null and feature.field:
            mask = mask & _not_null(self.column(feature.field))
        return mask

    def bounds(self, window: int | None) -> tuple[IntArray, IntArray]:
        if window not in self._bounds:
            times = self.events.times
            hi = np.searchsorted(times, self.points, side="right")
            if window is None:
                lo = np.zeros_like(hi) if self.segments is None else self.segments.point_lo
            else:
                lo = np.searchsorted(times, self.points - window, side="right")
            self._bounds[window] = (lo.astype(np.int64), hi.astype(np.int64))
        return self._bounds[window]

    def base_of(self, feature: FeaturePlan) -> tuple[Any, ...] | None:
        """The folded summary of dropped events (unbounded features only)."""
        if feature.window is not None:
            return None
        found = self.base.get(feature.name)
        return tuple(found) if found is not None else None


def _not_null(col: AnyArray) -> BoolArray:
    if col.dtype == object:
        return np.array([v is not None for v in col], dtype=bool)
    if col.ndim == 2:
        return np.asarray(~np.isnan(col).any(axis=1), dtype=bool)
    return ~np.isnan(col)


def _prefix(values: FloatArray) -> FloatArray:
    out = np.zeros(values.shape[0] + 1, dtype=np.float64)
    np.cumsum(values, out=out[1:])
    return out


def window_sum(ev: Evaluation, feature: FeaturePlan, values: FloatArray, slot: int) -> FloatArray:
    lo, hi = ev.bounds(feature.window)
    prefix = _prefix(values)
    total = prefix[hi] - prefix[lo]
    base = ev.base_of(feature)
    if base is not None:
        total = total + base[slot]
    return total


def count(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    return window_sum(ev, f, ev.mask(f).astype(np.float64), 0)


def _moments(ev: Evaluation, f: FeaturePlan) -> tuple[FloatArray, FloatArray, FloatArray]:
    mask = ev.mask(f, non_null=True)
    x = np.where(mask, ev.column(f.field or ""), 0.0).astype(np.float64)
    n = window_sum(ev, f, mask.astype(np.float64), 0)
    s1 = window_sum(ev, f, x, 1)
    s2 = window_sum(ev, f, x * x, 2) if f.kind == "stddev" else np.zeros_like(n)
    return n, s1, s2


def total(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    n, s1, _ = _moments(ev, f)
    return np.where(n > 0, s1, 0.0)


def mean(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    n, s1, _ = _moments(ev, f)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s1 / n, np.nan)


def stddev(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    """Population standard deviation: sqrt((n·Σx² − (Σx)²) / n²), exact for integers."""
    n, s1, s2 = _moments(ev, f)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(n * s2 - s1 * s1, 0.0) / (n * n)
        return np.where(n > 0, np.sqrt(var), np.nan)


def share(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    den = window_sum(ev, f, ev.mask(f).astype(np.float64), 0)
    num = window_sum(ev, f, ev.mask(f, share=True).astype(np.float64), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _value_codes(values: AnyArray) -> tuple[IntArray, int]:
    """An int code in [0, bound) per value, equal codes for equal values, and the bound;
    objects are told apart by their text."""
    if values.dtype != object:
        uniques, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64), int(uniques.shape[0])
    index: dict[str, int] = {}
    codes = np.fromiter(
        map(index.setdefault, map(str, values.tolist()), itertools.count()),
        dtype=np.int64,
        count=values.shape[0],
    )
    return codes, max(1, values.shape[0])


def count_distinct(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    """Each qualifying event counts from its time until the next event with the same
    value or its expiry, whichever is first: distinct(c) = #started(c) − #ended(c)."""
    if ev.base_of(f):
        msg = f"feature `{f.name}`: unbounded count_distinct cannot fold dropped events"
        raise FeatureDefinitionError(msg)
    mask = ev.mask(f, non_null=True)
    times = ev.events.times[mask]
    values = ev.column(f.field or "")[mask]
    if times.shape[0] == 0:
        return np.zeros(ev.points.shape[0], dtype=np.float64)
    codes, distinct = _value_codes(values)
    segment = None if ev.segments is None else ev.segments.of_event[mask]
    if segment is not None:  # the same value in another entity is another value
        codes = segment * distinct + codes
    order = np.lexsort((np.arange(times.shape[0]), codes))
    ends = np.full(times.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
    same = codes[order[1:]] == codes[order[:-1]]
    ends[order[:-1][same]] = times[order[1:][same]]
    if f.window is not None:
        ends = np.minimum(ends, times + f.window)
    elif segment is not None and ev.segments is not None:
        ends = np.minimum(ends, ev.segments.band_end[segment])
    started = np.searchsorted(times, ev.points, side="right")
    ended = np.searchsorted(np.sort(ends), ev.points, side="right")
    return (started - ended).astype(np.float64)


def _sparse_table(values: FloatArray, op: Callable[..., FloatArray]) -> list[FloatArray]:
    table = [values]
    step = 1
    while 2 * step <= values.shape[0]:
        prev = table[-1]
        table.append(op(prev[:-step], prev[step:]))
        step *= 2
    return table


def extreme(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    is_max = f.kind == "max"
    op, fill = (np.maximum, -np.inf) if is_max else (np.minimum, np.inf)
    mask = ev.mask(f, non_null=True)
    values = np.where(mask, ev.column(f.field or ""), fill).astype(np.float64)
    lo, hi = ev.bounds(f.window)
    out = np.full(ev.points.shape[0], fill, dtype=np.float64)
    if values.shape[0]:
        if f.window is None and ev.segments is None:
            acc = np.concatenate([[fill], op.accumulate(values)])
            out = acc[hi]
        else:
            table = _sparse_table(values, op)
            length = hi - lo
            has = length > 0
            k = np.zeros_like(length)
            k[has] = np.floor(np.log2(length[has])).astype(np.int64)
            for level in np.unique(k[has]):
                sel = has & (k == level)
                row = table[int(level)]
                out[sel] = op(row[lo[sel]], row[hi[sel] - (1 << int(level))])
    base = ev.base_of(f)
    if base is not None:
        out = op(out, base[0])
    return np.where(np.isinf(out), np.nan, out)


def _last_index(ev: Evaluation, f: FeaturePlan) -> IntArray:
    mask = ev.mask(f, non_null=True)
    idx = np.where(mask, np.arange(mask.shape[0]), -1)
    prefix = np.concatenate([[-1], np.maximum.accumulate(idx)]) if idx.shape[0] else np.array([-1])
    lo, hi = ev.bounds(f.window)
    found = prefix[hi]
    return np.where(found >= lo, found, -1).astype(np.int64)


def last(ev: Evaluation, f: FeaturePlan) -> AnyArray:
    found = _last_index(ev, f)
    col = ev.column(f.field or "")
    base = ev.base_of(f)
    if col.ndim == 2:
        out2 = np.full((found.shape[0], col.shape[1]), np.nan, dtype=np.float32)
        out2[found >= 0] = col[found[found >= 0]]
        if base is not None:
            out2[found < 0] = np.asarray(base[0], dtype=np.float32)
        return out2
    out = np.full(found.shape[0], np.nan, dtype=np.float64)
    if col.dtype == object:
        out = np.full(found.shape[0], None, dtype=object)
    out[found >= 0] = col[found[found >= 0]]
    if base is not None:
        out[found < 0] = base[0]
    return out


def _newest_vector_stats(ev: Evaluation, f: FeaturePlan) -> NewestStats:
    """Both vector features of the window's newest vector, from the JAX kernels of
    `feature_store.core.linalg` (imported on first use: the scalar kinds never load JAX)."""
    from feature_store.core import linalg

    lo, hi = ev.bounds(f.window)
    return linalg.newest_vector_stats(ev.column(f.field or ""), ev.mask(f, non_null=True), lo, hi)


def newest_and_first(valid: BoolArray, lo: IntArray, hi: IntArray) -> tuple[IntArray, IntArray]:
    """Per range [lo, hi) of rows: the last valid row and the first valid row at or after
    lo, both -1 when the range holds none. Two ranges holding the same valid rows get
    the same pair, so a value of the window's valid rows is a function of the pair."""
    n = valid.shape[0]
    rows = np.arange(n, dtype=np.int64)
    last = np.concatenate([[-1], np.maximum.accumulate(np.where(valid, rows, -1))])
    first = np.concatenate([np.minimum.accumulate(np.where(valid, rows, n)[::-1])[::-1], [n]])
    newest = last[hi]
    has = newest >= lo
    return np.where(has, newest, -1), np.where(has, first[lo], -1)


def newest_window_signature(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    """What a vector kind's value depends on, per point: (newest row, first row) of its
    window's valid vectors, as an (n, 2) float64 column (exact for row indices). Equal
    signatures give equal values, so change points can be found without the kernel and
    the values evaluated later, in the kernel stage (`feature_store.core.vector_rows`)."""
    lo, hi = ev.bounds(f.window)
    newest, first = newest_and_first(ev.mask(f, non_null=True), lo, hi)
    return np.stack([newest, first], axis=1).astype(np.float64)


def max_similarity_to_newest(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    """Highest cosine similarity of the newest vector to the others (null if < 2)."""
    similarity: FloatArray = _newest_vector_stats(ev, f).similarity
    return similarity


def centroid_distance_of_newest(ev: Evaluation, f: FeaturePlan) -> FloatArray:
    """Euclidean distance of the newest vector from the centroid of the window's vectors."""
    distance: FloatArray = _newest_vector_stats(ev, f).centroid_distance
    return distance
