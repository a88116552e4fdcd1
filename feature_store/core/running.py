"""Exact sliding windows at a constant cost per event: the streaming job's state machine.

`windows.WindowAggregator` re-evaluates a key's whole window at every change point, which
is what the batch job wants (all events at once) and what a stream cannot afford on a hot
key: its cost grows with the events in the window. Here each feature keeps a running
summary of the events now inside its window, and an event changes it twice: when it
enters (at its time) and when it leaves (at its time + W). Entered events are kept in
time order, so they leave each window in the order they entered: a window is an index
into that list and a leave is a step of it; the next change point is the first of a
small heap (an entry per window holding events, and the events not yet entered). One
event costs the same whatever the window holds:

- count, share: counts; sum, mean, stddev: the count, Σx and Σx² as exact integers (each
  float is a whole multiple of 2^-1074), so adding and removing never drifts and a mean
  is the correctly rounded quotient;
- count_distinct: a multiset (value → count), distinct = its size;
- max, min: the multiset and a heap with lazy deletion;
- last: the newest qualifying event (events leave oldest first, so when it leaves the
  window is empty of them).

The rows are those of `windows.compute_rows` (checked against the brute force by the
property tests, with events in any order): a row at `c` exactly when a value at `c`
differs from the value just before. An event older than the emitted time (within the
allowed lateness) updates the windows it is still inside and forces a corrected row
labelled after the last one handed out, as `WindowAggregator` does.

Kinds without a running form here (the vector kinds) make a view `supported(plan)` False:
the streaming job keeps the whole-window path for it.
"""

from __future__ import annotations

import bisect
import heapq
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from feature_store.core.columns import AnyArray
from feature_store.core.plan import FeaturePlan, ViewPlan
from feature_store.core.snapshot import combine_bases
from feature_store.core.windows import NEVER, ChangeRows, RowBatch
from feature_store.definitions import Condition, DType

_OBJECT_DTYPES = frozenset({DType.STRING, DType.FLOAT32_VECTOR})
SCALE_BITS = 1074  # every finite float64 is an integer multiple of 2^-1074
_MOMENT_KINDS = frozenset({"sum", "mean", "stddev"})
_VALUE_KINDS = _MOMENT_KINDS | {"max", "min", "count_distinct"}
FAR = 1 << 62  # a time after every change point: "none"
TRIM_AT = 1024  # entries left by every window before `inside` drops them
RUNNING_KINDS = frozenset(
    {"count", "sum", "mean", "stddev", "count_distinct", "max", "min", "last", "share"}
)
Event = tuple[int, str, tuple[Any, ...]]  # (event_time µs, event_id, field values)
Values = tuple[Any, ...]  # one value per feature, None for null
Reads = tuple[tuple[bool, Any], ...]  # per feature: whether the event counts, what it adds
Compiled = tuple[int, tuple[Any, ...]] | None  # a condition: field index (-1: time), values
_Spec = tuple[str, int, Compiled, Compiled]  # kind, field index (-1: time), where, share where


def supported(plan: ViewPlan) -> bool:
    """Whether every feature of the view has a running form."""
    return all(f.kind in RUNNING_KINDS for f in plan.features)


def exact(x: float) -> int:
    """`x` as an integer number of 2^-1074 (exact for every finite float)."""
    num, den = float(x).as_integer_ratio()
    return num << (SCALE_BITS - den.bit_length() + 1)


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class _Count:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def enter(self, _: Any) -> None:
        self.n += 1

    def leave(self, _: Any) -> None:
        self.n -= 1

    def value(self) -> Any:
        return self.n

    def dump(self) -> tuple[Any, ...]:
        return (self.n,)

    def load(self, saved: Sequence[Any]) -> None:
        (self.n,) = saved


class _Share:
    """Takes (qualifies, matches) pairs."""

    __slots__ = ("den", "num")

    def __init__(self) -> None:
        self.den = self.num = 0

    def enter(self, hit: bool) -> None:
        self.den += 1
        self.num += hit

    def leave(self, hit: bool) -> None:
        self.den -= 1
        self.num -= hit

    def value(self) -> Any:
        return self.num / self.den if self.den else None

    def dump(self) -> tuple[Any, ...]:
        return (self.den, self.num)

    def load(self, saved: Sequence[Any]) -> None:
        self.den, self.num = saved


class _Moments:
    """Takes a value as `exact(x)` (what a feature reads of an event: converted once)."""

    __slots__ = ("kind", "n", "s1", "s2", "squares")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.squares = kind == "stddev"
        self.n = self.s1 = self.s2 = 0

    def enter(self, v: int) -> None:
        self.n += 1
        self.s1 += v
        if self.squares:
            self.s2 += v * v

    def leave(self, v: int) -> None:
        self.n -= 1
        self.s1 -= v
        if self.squares:
            self.s2 -= v * v

    def value(self) -> Any:
        n, s1 = self.n, self.s1
        if self.kind == "sum":
            return s1 / (1 << SCALE_BITS) if n else 0.0
        if not n:
            return None
        if self.kind == "mean":
            return s1 / (n << SCALE_BITS)
        var = max(n * self.s2 - s1 * s1, 0) / ((n * n) << (2 * SCALE_BITS))
        return math.sqrt(var)

    def dump(self) -> tuple[Any, ...]:
        return (self.n, str(self.s1), str(self.s2))

    def load(self, saved: Sequence[Any]) -> None:
        self.n, self.s1, self.s2 = saved[0], int(saved[1]), int(saved[2])


class _Distinct:
    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}

    def enter(self, v: Any) -> None:
        key = _hashable(v)
        self.counts[key] = self.counts.get(key, 0) + 1

    def leave(self, v: Any) -> None:
        key = _hashable(v)
        left = self.counts[key] - 1
        if left:
            self.counts[key] = left
        else:
            del self.counts[key]

    def value(self) -> Any:
        return len(self.counts)

    def dump(self) -> tuple[Any, ...]:
        return tuple(self.counts.items())

    def load(self, saved: Sequence[Any]) -> None:
        self.counts = {k: c for k, c in saved}


def _hashable(v: Any) -> Any:
    """Values are told apart by their text, as the batch core does."""
    return v if isinstance(v, str) else str(v)


class _Extreme:
    __slots__ = ("counts", "heap", "sign")

    def __init__(self, kind: str) -> None:
        self.sign = -1.0 if kind == "max" else 1.0
        self.counts: dict[float, int] = {}
        self.heap: list[float] = []

    def enter(self, x: float) -> None:
        x = float(x)
        found = self.counts.get(x, 0)
        self.counts[x] = found + 1
        if not found:
            heapq.heappush(self.heap, self.sign * x)

    def leave(self, x: float) -> None:
        x = float(x)
        left = self.counts[x] - 1
        if left:
            self.counts[x] = left
        else:
            del self.counts[x]

    def value(self) -> Any:
        heap, counts = self.heap, self.counts
        while heap and (self.sign * heap[0]) not in counts:
            heapq.heappop(heap)
        return self.sign * heap[0] if heap else None

    def dump(self) -> tuple[Any, ...]:
        return tuple(self.counts.items())

    def load(self, saved: Sequence[Any]) -> None:
        self.counts = {float(k): c for k, c in saved}
        self.heap = [self.sign * k for k in self.counts]
        heapq.heapify(self.heap)


class _Last:
    """Takes ((time, id), value) pairs."""

    __slots__ = ("best", "value_")

    def __init__(self) -> None:
        self.best: tuple[int, str] | None = None
        self.value_: Any = None

    def enter(self, item: tuple[tuple[int, str], Any]) -> None:
        order, value = item
        if self.best is None or order > self.best:
            self.best, self.value_ = order, value

    def leave(self, item: tuple[tuple[int, str], Any]) -> None:
        if item[0] == self.best:
            self.best, self.value_ = None, None

    def value(self) -> Any:
        return self.value_

    def dump(self) -> tuple[Any, ...]:
        return () if self.best is None else (self.best[0], self.best[1], self.value_)

    def load(self, saved: Sequence[Any]) -> None:
        if saved:
            self.best, self.value_ = (int(saved[0]), str(saved[1])), saved[2]


Accumulator = _Count | _Share | _Moments | _Distinct | _Extreme | _Last


def _accumulator(f: FeaturePlan) -> Accumulator:
    if f.kind == "count":
        return _Count()
    if f.kind == "share":
        return _Share()
    if f.kind in ("sum", "mean", "stddev"):
        return _Moments(f.kind)
    if f.kind == "count_distinct":
        return _Distinct()
    if f.kind in ("max", "min"):
        return _Extreme(f.kind)
    return _Last()


@dataclass
class RunningState:
    """One (view, entity)'s running windows.

    The events entered so far are `inside` (what each feature reads of them) at `times`,
    in time order; window `s` holds those from index `lo[s]` on, and its next leave is at
    `due[s]` (`times[lo[s]]` plus the window; `FAR`: none). An event leaves its windows
    in the order it entered, so a leave is a step of an index, whatever the windows
    hold."""

    accumulators: list[Accumulator]
    base: list[Accumulator]  # unbounded features over the events dropped from `held`
    # events not yet entered, a heap: (time, seq, what each feature reads of it)
    pending: list[tuple[int, int, Reads]] = field(default_factory=list)
    times: list[int] = field(default_factory=list)  # the entered events' times, in order
    inside: list[Reads] = field(default_factory=list)  # what each feature reads of them
    lo: list[int] = field(default_factory=list)  # per window: its oldest event in `inside`
    due: list[int] = field(default_factory=list)  # per window: its next leave (FAR: none)
    # the windows that hold events as a heap of (next leave, slot): the next one is first
    leaves: list[tuple[int, int]] = field(default_factory=list)
    next_at: int = 0  # the next change point (FAR: none)
    held: dict[str, int] = field(default_factory=dict)  # event_id → time, not yet dropped
    # the held events, in arrival order: sorted by (time, id) when
    # `unsorted` is False (events usually arrive in time order)
    dropping: list[Event] = field(default_factory=list)
    unsorted: bool = False
    current: Values = ()
    emitted_until: int = NEVER
    last_label: int = NEVER
    dirty: bool = False  # a late event changed the value at `emitted_until`
    touched: bool = False  # events were added since the last advance
    seq: int = 0


@dataclass(frozen=True)
class _Contribution:
    """How one feature reads an event: whether it counts and with what value."""

    index: int
    feature: FeaturePlan
    slot: int  # -1 unbounded, else the index of its window in `plan.windows`


class RunningWindows:
    """`add` / `advance_to` / `next_change` for one view (one instance, every entity)."""

    def __init__(
        self,
        plan: ViewPlan,
        allowed_lateness: int = 0,
        tie_step: int = 1000,
        trim_at: int = TRIM_AT,
    ) -> None:
        self.plan = plan
        self.trim_at = trim_at
        self.allowed_lateness = allowed_lateness
        self.tie_step = tie_step
        self.windows = plan.windows
        self.field_index = {spec.name: i for i, spec in enumerate(plan.fields)}
        self.features = [
            _Contribution(
                index=i,
                feature=f,
                slot=-1 if f.window is None else self.windows.index(f.window),
            )
            for i, f in enumerate(plan.features)
        ]
        self.by_slot = [[c for c in self.features if c.slot == s] for s in range(len(self.windows))]
        self.slot_indices = [tuple(c.index for c in slot) for slot in self.by_slot]
        self.enumerated_windows = tuple(enumerate(self.windows))
        self._slots = tuple(
            (s, w, self.slot_indices[s]) for s, w in enumerate(self.windows)
        )  # (slot, window, its features)
        self.unbounded = [c for c in self.features if c.slot == -1]
        self.prunable = plan.prunable
        self._floats = tuple(spec.dtype.numeric or spec.dtype is DType.BOOL for spec in plan.fields)
        self._field_reads = tuple(
            (spec.name, to_float) for spec, to_float in zip(plan.fields, self._floats, strict=True)
        )
        self._where = self._compile(plan.where)
        self._specs: list[_Spec] = [
            (
                c.feature.kind,
                self._field_of(c.feature),
                self._compile(c.feature.where),
                self._compile(c.feature.share_where),
            )
            for c in self.features
        ]
        self._nothing: Reads = tuple((False, None) for _ in self.features)
        # one reader per distinct spec (two counts under one filter read the event once)
        distinct = list(dict.fromkeys(self._specs))
        self._distinct_readers = tuple(self._reader(spec) for spec in distinct)
        read_index = [distinct.index(spec) for spec in self._specs]
        # the distinct reads in feature order, one C call (two features or more share
        # a spec here, so the getter returns a tuple)
        self._pick: Callable[[list[tuple[bool, Any]]], Reads] | None = (
            operator.itemgetter(*read_index) if len(distinct) < len(self._specs) else None
        )
        self._numeric = [c for c in self.features if c.feature.dtype not in _OBJECT_DTYPES]
        self._objects = [c for c in self.features if c.feature.dtype in _OBJECT_DTYPES]
        self._numeric_names = [c.feature.name for c in self._numeric]
        self.names = tuple(f.name for f in plan.features)
        self._width = len(self.features)
        self._empty = (
            np.zeros(0, dtype=np.int64),
            {c.feature.name: self._column(c.feature, []) for c in self.features},
        )

    # -- events ---------------------------------------------------------------------------

    def new_state(self) -> RunningState:
        state = RunningState(
            accumulators=[_accumulator(f) for f in self.plan.features],
            base=[_accumulator(c.feature) for c in self.unbounded],
            lo=[0] * len(self.windows),
            due=[FAR] * len(self.windows),
            next_at=FAR,
        )
        state.current = self._values(state)
        return state

    def event_of(self, record: Mapping[str, Any]) -> Event:
        values = []
        for name, to_float in self._field_reads:
            v = record.get(name)
            if to_float and v is not None:
                v = float(v)
                if math.isnan(v):
                    v = None
            values.append(v)
        return (int(record["event_time"]), str(record["event_id"]), tuple(values))

    def add(self, state: RunningState, records: Iterable[Mapping[str, Any]]) -> list[Event]:
        """Add events (first delivery of an id wins); returns those new to the state."""
        fresh: list[Event] = []
        for record in records:
            event = self.event_of(record)
            if event[1] in state.held:
                continue
            self.insert(state, event)
            fresh.append(event)
        return fresh

    def insert(self, state: RunningState, event: Event) -> None:
        time, event_id, _ = event
        state.held[event_id] = time
        state.touched = True
        if self.prunable:
            dropping = state.dropping
            if dropping and time < dropping[-1][0]:
                state.unsorted = True
            dropping.append(event)
        reads = self._reads(event)
        if time > state.emitted_until:
            state.seq += 1
            heapq.heappush(state.pending, (time, state.seq, reads))
            if time < state.next_at:  # noqa: PLR1730 (per event: a call costs more)
                state.next_at = time
            return
        # late, within the allowed lateness: into the windows it is still inside
        now = state.emitted_until
        for contribution in self.unbounded:
            self._apply(state.accumulators, contribution, reads, enter=True)
        at = bisect.bisect_right(state.times, time)
        state.times.insert(at, time)
        state.inside.insert(at, reads)
        lo, due = state.lo, state.due
        for slot, w in enumerate(self.windows):
            if time > now - w:  # inside it: after the window's oldest (`lo` stays)
                for contribution in self.by_slot[slot]:
                    self._apply(state.accumulators, contribution, reads, enter=True)
                if time + w < due[slot]:
                    self._set_due(state, slot, time + w)
                    state.next_at = min(state.next_at, time + w)
            else:  # left it already: before the window's oldest
                lo[slot] += 1
        state.dirty = True

    @staticmethod
    def _set_due(state: RunningState, slot: int, at: int) -> None:
        """Move window `slot`'s next leave earlier, to `at` (a late event)."""
        state.due[slot] = at
        state.leaves = [(t, s) for t, s in state.leaves if s != slot]
        state.leaves.append((at, slot))
        heapq.heapify(state.leaves)

    def _reads(self, event: Event) -> Reads:
        """What each feature reads of `event` (the view's filter checked once)."""
        if self._where is not None and not self._matches(self._where, event):
            return self._nothing
        reads = [read(event) for read in self._distinct_readers]
        return tuple(reads) if self._pick is None else self._pick(reads)

    def _reader(self, spec: _Spec) -> Callable[[Event], tuple[bool, Any]]:
        """`_read` of one feature, its common forms specialised (a count or a share of
        a field's values under a filter on another: most of what a view declares)."""
        kind, index, where, share_where = spec
        if where is not None and where[0] < 0:
            return lambda event: self._read(spec, event)
        if share_where is not None and share_where[0] < 0:
            return lambda event: self._read(spec, event)
        nope: tuple[bool, Any] = (False, None)
        yes: tuple[bool, Any] = (True, None)
        if kind in _VALUE_KINDS and index >= 0 and self._floats[index]:
            # a numeric field's value: a float or None (`event_of`), what it adds is
            # the float, or its exact integer for the moments
            as_exact = kind in _MOMENT_KINDS

            def value_of(event: Event) -> tuple[bool, Any]:
                fields = event[2]
                if where is not None:
                    found = fields[where[0]]
                    if found is None or found not in where[1]:
                        return nope
                value = fields[index]
                if value is None:
                    return nope
                return (True, exact(value)) if as_exact else (True, value)

            return value_of
        if kind not in ("count", "share"):
            return lambda event: self._read(spec, event)
        if kind == "count":
            if where is None:
                return lambda event: yes
            w_index, w_values = where

            def count(event: Event) -> tuple[bool, Any]:
                value = event[2][w_index]
                return yes if value is not None and value in w_values else nope

            return count
        s_index, s_values = share_where if share_where is not None else (0, ())
        hit: tuple[bool, Any] = (True, True)
        miss: tuple[bool, Any] = (True, False)

        def share(event: Event) -> tuple[bool, Any]:
            fields = event[2]
            if where is not None:
                found = fields[where[0]]
                if found is None or found not in where[1]:
                    return nope
            value = fields[s_index]
            return hit if value is not None and value in s_values else miss

        return share

    def _read(self, spec: _Spec, event: Event) -> tuple[bool, Any]:
        """Whether `event` counts for the feature, and what it adds."""
        kind, index, where, share_where = spec
        if where is not None and not self._matches(where, event):
            return False, None
        if kind == "count":
            return True, None
        if kind == "share":
            return True, self._matches(share_where, event)
        value = event[0] if index < 0 else event[2][index]
        if _null(value) or (kind == "last" and _null_vector(value)):
            return False, None
        if index < 0:
            value = float(value)
        if kind == "last":
            return True, ((event[0], event[1]), value)
        if kind in _MOMENT_KINDS:
            return True, exact(value)
        return True, value

    def _field_of(self, f: FeaturePlan) -> int:
        """Where a feature's value is in an event's fields (-1: its time; -2: none read)."""
        if f.field == "event_time":
            return -1
        return self.field_index[f.field] if f.field else -2

    def _compile(self, cond: Condition | None) -> Compiled:
        if cond is None:
            return None
        index = -1 if cond.field == "event_time" else self.field_index[cond.field]
        return index, tuple(cond.values)

    @staticmethod
    def _matches(cond: Compiled, event: Event) -> bool:
        if cond is None:
            return True
        index, values = cond
        value: Any = float(event[0]) if index < 0 else event[2][index]
        return value is not None and value in values

    @staticmethod
    def _apply(
        accumulators: list[Accumulator], c: _Contribution, reads: Reads, *, enter: bool
    ) -> None:
        counts, value = reads[c.index]
        if counts:
            acc = accumulators[c.index]
            if enter:
                acc.enter(value)
            else:
                acc.leave(value)

    @staticmethod
    def _values(state: RunningState) -> Values:
        return tuple([acc.value() for acc in state.accumulators])

    # -- time ------------------------------------------------------------------------------

    def _step(self, state: RunningState, at: int) -> list[int] | None:
        """Apply every enter and leave at time `at` (the next change point). Returns
        None when an event entered (every feature may have changed), else the slots of
        the windows events left (only their features changed)."""
        pending = state.pending
        accumulators = state.accumulators
        inside, times = state.inside, state.times
        due = state.due
        entered = False
        while pending and pending[0][0] == at:
            reads = heapq.heappop(pending)[2]
            for acc, (counts, value) in zip(accumulators, reads):  # noqa: B905 (same length)
                if counts:
                    acc.enter(value)
            times.append(at)
            inside.append(reads)
            entered = True
        leaves = state.leaves
        if entered and FAR in due:  # windows that were empty: this event leaves them first
            for s, w, _ in self._slots:
                if due[s] == FAR:
                    due[s] = at + w
                    heapq.heappush(leaves, (at + w, s))
        moved = []
        if leaves and leaves[0][0] == at:
            lo, n = state.lo, len(inside)
            while leaves and leaves[0][0] == at:
                s = leaves[0][1]
                w, indices = self.windows[s], self.slot_indices[s]
                i = lo[s]
                while True:
                    t = times[i] + w
                    if t != at:
                        heapq.heapreplace(leaves, (t, s))
                        break
                    reads = inside[i]
                    for k in indices:
                        counts, value = reads[k]
                        if counts:
                            accumulators[k].leave(value)
                    i += 1
                    if i == n:  # the window is empty
                        t = FAR
                        heapq.heappop(leaves)
                        break
                due[s] = t
                lo[s] = i
                moved.append(s)
        nxt = leaves[0][0] if leaves else FAR
        if pending and pending[0][0] < nxt:
            nxt = pending[0][0]
        state.next_at = nxt
        return None if entered else moved

    def _trim(self, state: RunningState) -> None:
        """Forget the entries every window has left, once they are half of `inside`
        (the longest window's index is the smallest)."""
        lo = state.lo
        if not lo:
            return
        cut = lo[-1]
        if cut >= self.trim_at and 2 * cut >= len(state.inside):
            del state.inside[:cut]
            del state.times[:cut]
            for s in range(len(lo)):
                lo[s] -= cut

    def advance_to(
        self, state: RunningState, entity_key: str, t: int, settle: bool = False
    ) -> RowBatch:
        """Rows of every change point up to `t` (see `WindowAggregator.advance_to`)."""
        return self.batch(entity_key, self.advance_rows(state, t, settle))

    def advance_rows(
        self, state: RunningState, t: int, settle: bool = False
    ) -> list[tuple[int, Values]]:
        """`advance_to`'s rows as (valid_from, values) pairs, no batch built (a visit
        that changes nothing costs no arrays)."""
        rows: list[tuple[int, Values]] = []
        if state.dirty:
            state.current = self._values(state)
        current, accumulators = state.current, state.accumulators
        while state.next_at <= t:
            at = state.next_at
            moved = self._step(state, at)
            if moved is None:
                values = tuple([acc.value() for acc in accumulators])
            else:  # only the features of the windows that moved are read again
                changed = list(current)
                for slot in moved:
                    for i in self.slot_indices[slot]:
                        changed[i] = accumulators[i].value()
                values = tuple(changed)
            if values != current:  # (the next step's unchanged values come from it)
                rows.append((at, values))
                current = values
        state.current = current
        lo = state.lo
        if lo and lo[-1] >= self.trim_at and 2 * lo[-1] >= len(state.inside):
            self._trim(state)
        if not (state.dirty or settle):  # the usual visit: rows of change points, in order
            if rows:
                last = rows[-1]
                if last[0] <= state.last_label:
                    rows = [(state.last_label + self.tie_step, last[1])]
                state.last_label = rows[-1][0]
            if t > state.emitted_until:  # noqa: PLR1730 (per visit and firing: a call costs more)
                state.emitted_until = t
            state.touched = False
            return rows
        rewrite = state.dirty or (settle and (state.touched or bool(rows)))
        if rewrite and not rows:
            rows.append((max(state.emitted_until, NEVER + 1), state.current))
        if settle and rows:
            rows[-1] = (max(rows[-1][0], t), rows[-1][1])
        if rows and rows[-1][0] <= state.last_label:
            rows = [(state.last_label + self.tie_step, rows[-1][1])]
        if rows:
            state.last_label = max(state.last_label, rows[-1][0])
        state.emitted_until = max(state.emitted_until, t)
        state.dirty = state.touched = False
        return rows

    def next_change(self, state: RunningState) -> int | None:
        return state.next_at if state.next_at < FAR else None

    def droppable(self, state: RunningState) -> int:
        """How many held events no window can need again (the storage may forget them)."""
        if not self.prunable:
            return 0
        horizon = self._horizon(state)
        return sum(1 for item in state.dropping if item[0] <= horizon)

    def _horizon(self, state: RunningState) -> int:
        return state.emitted_until - self.allowed_lateness - self.plan.longest - 1

    def drop(self, state: RunningState) -> int:
        """Forget events no window can need again, folding them into the unbounded
        features' base (what a rebuilt state starts from). Returns how many."""
        if not self.prunable or state.emitted_until == NEVER:
            return 0
        horizon, dropping = self._horizon(state), self._sorted(state)
        cut = bisect.bisect_right(dropping, horizon, key=_held_time)
        held = state.held
        for event in dropping[:cut]:
            del held[event[1]]
            if not self.unbounded:
                continue
            reads = self._reads(event)
            for i, contribution in enumerate(self.unbounded):
                counts, value = reads[contribution.index]
                if counts:
                    state.base[i].enter(value)
        del dropping[:cut]
        return cut

    @staticmethod
    def _sorted(state: RunningState) -> list[Event]:
        """`state.dropping` sorted by time (ids are unique: no events compared)."""
        if state.unsorted:
            state.dropping.sort(key=_held_order)
            state.unsorted = False
        return state.dropping

    def oldest_held(self, state: RunningState) -> int | None:
        dropping = self._sorted(state)
        return dropping[0][0] if dropping else None

    def dump_base(self, state: RunningState) -> tuple[tuple[Any, ...], ...]:
        return tuple(acc.dump() for acc in state.base)

    def fold_base(self, events: Iterable[Event]) -> tuple[tuple[Any, ...], ...]:
        """The unbounded features' summaries (`dump_base`'s form) over `events`, in any
        order: what a snapshot keeps (`feature_store.core.snapshot`)."""
        base = [_accumulator(c.feature) for c in self.unbounded]
        for event in events:
            reads = self._reads(event)
            for acc, c in zip(base, self.unbounded, strict=True):
                counts, value = reads[c.index]
                if counts:
                    acc.enter(value)
        return tuple(acc.dump() for acc in base)

    def merge_base(self, state: RunningState, base: Sequence[Sequence[Any]]) -> None:
        """Adds a snapshot's summaries (of events the state never held) to the state's
        unbounded features; the value at `emitted_until` is rewritten on the next advance."""
        kinds = [c.feature.kind for c in self.unbounded]
        merged = combine_bases(kinds, self.dump_base(state), base)
        for i, c in enumerate(self.unbounded):
            state.base[i].load(merged[i])
            acc = state.accumulators[c.index]
            acc.load(combine_bases([kinds[i]], [acc.dump()], [base[i]])[0])
        if state.emitted_until == NEVER:
            state.current = self._values(state)
        else:
            state.dirty = True
        state.touched = True

    def rebuild(
        self,
        events: Iterable[Event],
        base: Sequence[Sequence[Any]],
        emitted_until: int,
        last_label: int,
    ) -> RunningState:
        """A state from what the storage keeps: held events, the base of dropped ones,
        and how far rows were emitted (nothing is emitted while replaying)."""
        state = self.new_state()
        for i, saved in enumerate(base):
            state.base[i].load(saved)
            state.accumulators[self.unbounded[i].index].load(saved)
        for event in events:
            time, event_id, values = event
            self.insert(state, (int(time), str(event_id), tuple(values)))
        while state.next_at <= emitted_until:
            self._step(state, state.next_at)
        self._trim(state)
        state.current = self._values(state)
        state.emitted_until, state.last_label = emitted_until, last_label
        state.dirty = state.touched = False
        return state

    # -- rows ------------------------------------------------------------------------------

    def change_rows(self, entity_key: str, rows: list[tuple[int, Values]]) -> ChangeRows:
        """The rows as they are, Python values (what the streaming step hands on)."""
        return ChangeRows(self.plan.view, entity_key, self.names, rows)

    def batch(self, entity_key: str, rows: list[tuple[int, Values]]) -> RowBatch:
        """The rows as one entity's `RowBatch` (numeric columns share one array)."""
        if not rows:
            return RowBatch(self.plan.view, entity_key, self._empty[0], self._empty[1])
        numeric, objects = self._numeric, self._objects
        if len(rows) == 1 and not objects:  # a visit's usual output: one row
            at, values = rows[0]
            row = np.array(values, dtype=np.float64)  # None is NaN
            return RowBatch.of(
                self.plan.view,
                entity_key,
                np.array((at,), dtype=np.int64),
                dict(zip(self._numeric_names, row.reshape(self._width, 1), strict=True)),
            )
        valid_from = np.array([r[0] for r in rows], dtype=np.int64)
        columns: dict[str, AnyArray] = {}
        if numeric:  # one conversion for every numeric column (None is NaN), then views
            if objects:
                table = np.array([[r[1][c.index] for c in numeric] for r in rows], dtype=np.float64)
            else:
                table = np.array([r[1] for r in rows], dtype=np.float64)
            columns.update(zip(self._numeric_names, table.T, strict=True))
        for c in objects:
            columns[c.feature.name] = self._column(c.feature, [r[1][c.index] for r in rows])
        return RowBatch(self.plan.view, entity_key, valid_from, columns)

    def _column(self, f: FeaturePlan, values: list[Any]) -> AnyArray:
        if f.dtype is DType.FLOAT32_VECTOR:
            out = np.full((len(values), f.dim or 0), np.nan, dtype=np.float32)
            for i, v in enumerate(values):
                if v is not None:
                    out[i] = np.asarray(v, dtype=np.float32)
            return out
        if f.dtype is DType.STRING:
            return np.array(values, dtype=object)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _held_time(event: Event) -> int:
    return event[0]


def _held_order(event: Event) -> tuple[int, str]:
    return event[0], event[1]


def _null_vector(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray) and bool(np.isnan(np.asarray(value)).any())
