"""Change points of exact sliding windows, one entity at a time: the streaming job's
state machine. (The batch job computes many entities at once in `change_rows`, checked
against `compute_rows` here, which runs all of one entity's events through this machine.)

A view's values only change at an event's time `e` or at an expiry `e + W`. The
`WindowAggregator` keeps one entity's state (its events still inside the longest window,
plus a folded summary of older ones for unbounded features); `add()` takes events in
any order, `advance_to(t)` emits the rows of every change point up to `t`. A row is
emitted at `c` exactly when the values at `c` differ from those just before (`c - 1µs`),
which is a property of the events alone: the batch job (all events, one call) and the
streaming job (incremental calls) emit the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from feature_store.core.aggregation import Evaluation
from feature_store.core.columns import AnyArray, EventColumns, IntArray
from feature_store.core.kinds import deferred_features, evaluate, kind_of
from feature_store.core.pending import PendingVectors, VectorMasks, pending_of, split_required
from feature_store.core.plan import ViewPlan
from feature_store.errors import FeatureDefinitionError

NEVER = int(np.iinfo(np.int64).min)


@dataclass(frozen=True)
class RowBatch:
    """Change-point rows of one entity of one view: `valid_from` (µs) and value columns.

    `pending`: vector features still to be evaluated by the kernel stage (their columns
    hold signatures until then, and some rows may still be dropped; see `pending`)."""

    view: str
    entity_key: str
    valid_from: IntArray
    values: Mapping[str, AnyArray]
    pending: PendingVectors | None = None

    def __len__(self) -> int:
        return int(self.valid_from.shape[0])

    @classmethod
    def of(
        cls, view: str, entity_key: str, valid_from: IntArray, values: Mapping[str, AnyArray]
    ) -> RowBatch:
        """`RowBatch(view, entity_key, valid_from, values)` with no pending vectors, its
        fields set in its `__dict__` at once: the frozen `__init__` pays an
        `object.__setattr__` call per field, and the streaming step builds a batch per
        timer firing (about a third of the batch's cost)."""
        batch = object.__new__(cls)
        fields = batch.__dict__
        fields["view"] = view
        fields["entity_key"] = entity_key
        fields["valid_from"] = valid_from
        fields["values"] = values
        fields["pending"] = None
        return batch

    def select(self, keep: npt.NDArray[np.bool_]) -> RowBatch:
        return RowBatch(
            self.view,
            self.entity_key,
            self.valid_from[keep],
            {name: col[keep] for name, col in self.values.items()},
            None if self.pending is None else self.pending.select(keep),
        )

    def row(self, i: int) -> dict[str, Any]:
        return {name: col[i] for name, col in self.values.items()}


class ChangeRows:
    """Change-point rows of one entity of one view as Python values: what the streaming
    step hands downstream for a view with running windows (usually one row: a visit or
    a timer firing), with none of `RowBatch`'s arrays. `rows`: (valid_from µs, values)
    in time order, the values in the order of `names`, None for null (no NaN)."""

    __slots__ = ("entity_key", "names", "rows", "view")

    def __init__(
        self,
        view: str,
        entity_key: str,
        names: tuple[str, ...],
        rows: list[tuple[int, tuple[Any, ...]]],
    ) -> None:
        self.view = view
        self.entity_key = entity_key
        self.names = names
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __reduce__(self) -> tuple[Any, ...]:
        return ChangeRows, (self.view, self.entity_key, self.names, self.rows)

    def __repr__(self) -> str:
        return f"ChangeRows({self.view!r}, {self.entity_key!r}, {self.names!r}, {self.rows!r})"

    def row(self, i: int) -> dict[str, Any]:
        return dict(zip(self.names, self.rows[i][1], strict=True))


@dataclass
class EntityState:
    """What the streaming job keeps per (view, entity)."""

    events: EventColumns
    base: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    emitted_until: int = NEVER  # change points <= this were emitted
    dirty_from: int | None = None  # earliest event time added at or before emitted_until
    last_label: int = NEVER  # the newest valid_from handed to the writers


def candidates(
    plan: ViewPlan, events: EventColumns, after: int | None = None, until: int | None = None
) -> IntArray:
    """Sorted unique times in (after, until] at which a value may change: event times
    and expiries. Each `times + w` is sorted, so the range is cut by binary search
    before anything is concatenated (the streaming path asks for a few points)."""
    times = events.times
    if times.shape[0] == 0:
        return times
    parts = []
    for w in (0, *plan.windows):
        lo = (
            0 if after is None else int(np.searchsorted(times, max(after - w, NEVER), side="right"))
        )
        hi = (
            times.shape[0]
            if until is None
            else int(np.searchsorted(times, until - w, side="right"))
        )
        if hi > lo:
            parts.append(times[lo:hi] + w)
    found: IntArray = np.unique(np.concatenate(parts)) if parts else times[:0]
    return found


def differs(a: AnyArray, b: AnyArray) -> npt.NDArray[np.bool_]:
    """Elementwise a != b, row-wise for vectors; NaN equals NaN (null is unchanged)."""
    if a.dtype == object:
        return np.array([x != y for x, y in zip(a, b, strict=True)], dtype=bool)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    out: npt.NDArray[np.bool_] = ~same.all(axis=1) if same.ndim == 2 else ~same
    return out


def change_rows(
    plan: ViewPlan,
    entity_key: str,
    events: EventColumns,
    after: int,
    until: int,
    base: Mapping[str, tuple[Any, ...]] | None = None,
    force_last: bool = False,
    defer: bool = False,
) -> RowBatch:
    """Rows at the change points in (after, until]; `force_last` also emits the value at
    the last candidate even if unchanged (to overwrite rows a late event made stale).
    `defer` leaves the vector kinds to the kernel stage (`RowBatch.pending`)."""
    cands = candidates(plan, events, after, until)
    if cands.shape[0] == 0:
        return RowBatch(plan.view, entity_key, cands, {f.name: cands[:0] for f in plan.features})
    points = np.concatenate([[cands[0] - 1], cands])
    defer = defer and bool(deferred_features(plan))
    values = evaluate(plan, events, points, base, deferred=defer)
    each = {name: differs(col[1:], col[:-1]) for name, col in values.items()}
    changed = np.zeros(cands.shape[0], dtype=bool)
    for moved in each.values():
        changed |= moved
    if force_last:
        changed[-1] = True
    pending = None
    if defer:
        required = split_required(plan, values, each)
        if force_last:
            required[-1] = True
        pending = pending_of(
            VectorMasks.of(plan, events),
            {f.name: values[f.name][1:][changed] for f in deferred_features(plan)},
            {f.name: values[f.name][:-1][changed] for f in deferred_features(plan)},
            required[changed],
        )
    return RowBatch(
        plan.view,
        entity_key,
        cands[changed],
        {name: col[1:][changed] for name, col in values.items()},
        pending,
    )


class WindowAggregator:
    """State + `add` + `advance_to` for one view; one instance serves every entity."""

    def __init__(
        self,
        plan: ViewPlan,
        allowed_lateness: int = 0,
        tie_step: int = 1000,
        *,
        defer_vectors: bool = False,
    ) -> None:
        """`tie_step` (µs) separates a corrected row from the row it corrects; 1 ms, the
        finest cell timestamp Bigtable keeps. `defer_vectors`: rows carry the vector
        kinds pending, for the kernel stage (`RowBatch.pending`)."""
        self.plan = plan
        self.allowed_lateness = allowed_lateness
        self.tie_step = tie_step
        self.defer_vectors = defer_vectors

    def new_state(self) -> EntityState:
        return EntityState(events=EventColumns.empty(self.plan.fields))

    def add(self, state: EntityState, records: Iterable[Mapping[str, object]]) -> None:
        incoming = EventColumns.from_records(records, self.plan.fields)
        if len(incoming) == 0:
            return
        fresh = incoming.select(~np.isin(incoming.event_ids, state.events.event_ids))
        if len(fresh) == 0:
            return  # re-deliveries of events already held change nothing
        state.events = state.events.merge(fresh)
        earliest = int(fresh.times.min())
        if earliest <= state.emitted_until:
            state.dirty_from = (
                earliest if state.dirty_from is None else min(earliest, state.dirty_from)
            )

    def advance_to(
        self, state: EntityState, entity_key: str, t: int, settle: bool = False
    ) -> RowBatch:
        """Emit the rows of every change point up to `t`, then drop what cannot matter.

        `settle` (a job starting from history) also emits the value at `t` labelled `t`:
        it must replace whatever an earlier job left in the stores, whose labels all lie
        before this job's start."""
        after = state.emitted_until
        rewrite = state.dirty_from is not None or settle
        if state.dirty_from is not None:
            after = min(after, state.dirty_from - 1)
        rows = change_rows(
            self.plan,
            entity_key,
            state.events,
            after,
            t,
            state.base,
            force_last=rewrite,
            defer=self.defer_vectors,
        )
        if settle and len(rows):
            rows.valid_from[-1] = max(int(rows.valid_from[-1]), t)
        if rows.pending is not None and len(rows) and int(rows.valid_from[0]) <= state.last_label:
            # rows among those already labelled: the newest must reach the writers even
            # if the kernel stage finds its vector values unchanged
            rows = RowBatch(
                rows.view, rows.entity_key, rows.valid_from, rows.values, rows.pending.force_last()
            )
        if len(rows) and int(rows.valid_from[-1]) <= state.last_label:
            rows = self._after_last_label(state, rows)
        if len(rows):
            state.last_label = max(state.last_label, int(rows.valid_from[-1]))
        state.emitted_until = max(state.emitted_until, t)
        state.dirty_from = None
        self._prune(state, t - self.allowed_lateness - self.plan.longest - 1)
        return rows

    def _after_last_label(self, state: EntityState, rows: RowBatch) -> RowBatch:
        """Rows that correct what the writers already have (a late-but-allowed event, or
        history arriving after live events). Only the newest row matters online, and it
        must win newer-wins however the writes are ordered: rows at or before the last
        label are dropped, and the newest is labelled just after it. Its values hold from
        its change point on; a label moves by `tie_step` per correction at most."""
        keep = rows.valid_from > state.last_label
        keep[-1] = True
        kept = rows.select(keep)
        labels = kept.valid_from.copy()
        labels[-1] = max(int(labels[-1]), state.last_label + self.tie_step)
        # the relabelled row stands for the rows dropped here: the kernel stage keeps it
        pending = None if kept.pending is None else kept.pending.force_last()
        return RowBatch(kept.view, kept.entity_key, labels, kept.values, pending)

    def next_change(self, state: EntityState) -> int | None:
        """The first change point after what was emitted (for an event-time timer)."""
        times, after = state.events.times, state.emitted_until
        best: int | None = None
        for w in (0, *self.plan.windows):
            i = int(np.searchsorted(times, max(after - w, NEVER), side="right"))
            if i < times.shape[0] and (best is None or int(times[i]) + w < best):
                best = int(times[i]) + w
        return best

    def _prune(self, state: EntityState, horizon: int) -> None:
        if not self.plan.prunable or len(state.events) == 0:
            return
        old = state.events.times <= horizon
        if not old.any():
            return
        dropped = state.events.select(old)
        state.base = fold(self.plan, dropped, state.base)
        state.events = state.events.select(~old)


def fold(
    plan: ViewPlan, dropped: EventColumns, base: Mapping[str, tuple[Any, ...]]
) -> dict[str, tuple[Any, ...]]:
    """Summaries of the unbounded features over `dropped` events, merged into `base`
    (each kind's `summarize`; only views whose unbounded kinds all fold are pruned)."""
    unbounded = [f for f in plan.features if f.window is None]
    if not unbounded:
        return dict(base)
    at = np.array([int(dropped.times[-1])], dtype=np.int64)
    summary_plan = ViewPlan(
        view=plan.view,
        entity=plan.entity,
        join_key=plan.join_key,
        source=plan.source,
        where=plan.where,
        features=tuple(unbounded),
        fields=plan.fields,
    )
    out = dict(base)
    ev = Evaluation(summary_plan, dropped, at, base)
    for f in unbounded:
        summarize = kind_of(f.kind).summarize
        if summarize is None:
            msg = f"aggregation kind {f.kind!r} of `{f.name}` cannot fold expired events"
            raise FeatureDefinitionError(msg)
        summary = summarize(ev, f)
        if summary is not None:
            out[f.name] = summary
    return out


def compute_rows(
    plan: ViewPlan,
    entity_key: str,
    records: Iterable[Mapping[str, object]],
    start: int | None = None,
    end: int | None = None,
    *,
    defer_vectors: bool = False,
) -> RowBatch:
    """The batch path: all of one entity's events through the same state machine."""
    aggregator = WindowAggregator(plan, defer_vectors=defer_vectors)
    state = aggregator.new_state()
    aggregator.add(state, records)
    if start is not None:
        state.emitted_until = start - 1
    last = candidates(plan, state.events)
    until = int(last[-1]) if last.shape[0] else NEVER
    return aggregator.advance_to(state, entity_key, until if end is None else min(until, end))
