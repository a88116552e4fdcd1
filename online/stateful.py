"""The streaming job's stateful steps: de-duplication by event_id, and exact sliding
windows per (view, entity) driven by event-time timers.

`_WindowState` keeps one `EntityState` per key (the events still inside the longest
window plus the allowed lateness, and a folded summary for unbounded features). An
event updates it and emits the change rows up to its time; an event-time timer at the
next change point (an expiry `event_time + W`) emits the rows of values that change
because events *leave* a window, with no new event. Events older than what a key has
emitted minus the allowed lateness cannot be made exact here: they go to the late
output (the nightly backfill makes them exact).
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import zlib
from collections.abc import Hashable, Iterable, Iterator, Sequence
from time import time_ns
from typing import Any, Generic, TypeVar

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import FastPrimitivesCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.utils.timestamp import Timestamp

from common.beam_types import PColl
from common.metrics import JobCounter, JobDistribution, JobEventTime, add_counts
from common.stages import DEDUP_HINTS, FEATURE_HINTS, Stage
from feature_store.core.plan import ViewPlan
from feature_store.core.running import FAR, Event, RunningState, RunningWindows, supported
from feature_store.core.windows import NEVER, ChangeRows, EntityState, RowBatch, WindowAggregator
from online.state_coder import EntityStateCoder

log = logging.getLogger(__name__)
LATE = "late"
WATERMARK_REACHED = "watermark_reached_us"
"""The latest event time at which a change timer fired: the step's watermark had passed
it, so every key's change points up to it were emitted (the online rows are complete
up to it; after it, a value may have changed with no row emitted yet)."""
T = TypeVar("T")


COALESCE_US = 1_000_000  # change points due within this share one timer firing
CLOCK = "__clock__"
"""The view name of the step's one clock key (`AggregateWindows(clock_s=...)`): its timer
fires every `clock_s` of event time, so the watermark the step has reached is proven
(`WATERMARK_REACHED`) even when no key's value changes, e.g. after a restart that follows
every change point. It ticks up to `CLOCK_AHEAD_US` past the wall clock, then stops (the
watermark of a finished or drained input jumps to the end of time)."""
CLOCK_AHEAD_US = 60_000_000
AFTER_US = 1
"""A change timer is set just after the change points it emits: the watermark reaching
a time `t` fires timers at `t` (the local runner fires a timer once the watermark is at
its time) while an event at `t` is still on time, and rows emitted before that event
would make its own row a correction, labelled after them (rows of a hot key's burst
would all shift by the label step). At `t + 1 µs` the watermark has passed `t`."""
MIN_COMPACTION = 64  # stored events before the first rewrite of a key's event bag
_CACHE_KEYS = 100_000


class _Cache(Generic[T]):
    """States (running summaries, remembered ids) of the keys this worker processed,
    each with the token of the commit it reflects. A state is taken out while a bundle
    changes it and put back with the token that bundle writes: if the bundle fails or the
    key was processed elsewhere since, the tokens differ and the state is rebuilt from
    what Beam's state holds."""

    def __init__(self, capacity: int = _CACHE_KEYS) -> None:
        self.capacity = capacity
        # insertion-ordered: a key put back goes last, the first is the least recent
        self.entries: dict[Hashable, tuple[int, T]] = {}
        self.lock = threading.Lock()

    def take(self, key: Hashable, token: int) -> T | None:
        found = self.entries.pop(key, None)  # one dict operation: atomic under the GIL
        return found[1] if found is not None and found[0] == token else None

    def put(self, key: Hashable, token: int, state: T) -> None:
        entries = self.entries
        entries[key] = (token, state)
        if len(entries) > self.capacity:
            self._evict()

    def _evict(self) -> None:
        """Drop the least recent keys beyond the capacity. The lock keeps evictions one
        at a time; the keys are listed in one C call (no put can change the dict
        meanwhile) and popped with a default (a take may have popped one already)."""
        entries = self.entries
        with self.lock:
            excess = len(entries) - self.capacity
            if excess > 0:
                for old in list(itertools.islice(entries, excess)):
                    entries.pop(old, None)


_RUNNING_CACHE: _Cache[RunningState] = _Cache()


DEDUP_SHARDS = 1024  # keys of the de-duplication step per topic: its timers at most
DEDUP_BUCKET_S = 3600  # ids are forgotten a bucket at a time: one timer per shard per bucket
MIN_ID_COMPACTION = 256  # stored ids before the first rewrite of a shard's id bag


def id_shard(event_id: str, shards: int = DEDUP_SHARDS) -> int:
    """The de-duplication shard of an event id (stable across processes and runs)."""
    return zlib.crc32(event_id.encode("utf-8")) % shards


class _SeenIds:
    """One shard's remembered ids, each with the end of the bucket it expires in (µs)."""

    __slots__ = ("by_expiry", "by_id")

    def __init__(self) -> None:
        self.by_id: dict[str, int] = {}
        self.by_expiry: dict[int, list[str]] = {}

    def add(self, event_id: str, expiry: int) -> None:
        self.by_id[event_id] = expiry
        self.by_expiry.setdefault(expiry, []).append(event_id)

    def forget_until(self, t: int) -> None:
        for expiry in [e for e in self.by_expiry if e <= t]:
            for event_id in self.by_expiry.pop(expiry):
                if self.by_id.get(event_id) == expiry:
                    del self.by_id[event_id]

    def next_expiry(self) -> int | None:
        return min(self.by_expiry) if self.by_expiry else None


_SEEN_CACHE: _Cache[_SeenIds] = _Cache()


class _FirstDelivery(beam.DoFn):
    """Passes the first delivery of each event_id and remembers it for `ttl_s` of event
    time, rounded up to a whole bucket.

    Keyed by (topic, shard of the id), not by id: a shard keeps its ids in a bag,
    appended per id, and a small head (a token, the stored count, what was forgotten,
    the timer's time); its one timer fires at the end of the oldest bucket still held
    and forgets that bucket. So the timers pending are at most one per shard, whatever
    the traffic. The ids live in the worker's memory under the head's token, as the
    windows do (`_Cache`); the bag is rewritten when its stored ids reach twice those
    still remembered, so each id is rewritten about once."""

    IDS = BagStateSpec("ids", FastPrimitivesCoder())
    HEAD = ReadModifyWriteStateSpec("ids_head", FastPrimitivesCoder())
    FORGET = TimerSpec("forget", TimeDomain.WATERMARK)

    def __init__(self, ttl_s: int, bucket_s: int = DEDUP_BUCKET_S) -> None:
        self.ttl_us = ttl_s * 1_000_000
        self.bucket_us = bucket_s * 1_000_000
        self.duplicates = JobCounter("stream", "events_duplicate")
        self.rebuilds = JobCounter("stream", "id_shard_rebuilds")

    def _load(self, key: str, ids: Any, head: tuple[Any, ...] | None) -> _SeenIds:
        if head is None:
            return _SeenIds()
        found = _SEEN_CACHE.take(key, head[0])
        if found is not None:
            return found
        self.rebuilds.inc()
        seen, forgotten = _SeenIds(), head[2]
        for expiry, event_id in ids.read():
            if expiry > forgotten:
                seen.add(event_id, expiry)
        return seen

    def process(
        self,
        item: tuple[str, dict[str, Any]],
        timestamp: Any = beam.DoFn.TimestampParam,
        ids: Any = beam.DoFn.StateParam(IDS),
        head: Any = beam.DoFn.StateParam(HEAD),
        forget: Any = beam.DoFn.TimerParam(FORGET),
    ) -> Iterator[dict[str, Any]]:
        key, record = item
        stored = head.read()
        seen = self._load(key, ids, stored)
        event_id = str(record["event_id"])
        if event_id in seen.by_id:
            self.duplicates.inc()
            if stored is not None:
                _SEEN_CACHE.put(key, stored[0], seen)
            return
        count, forgotten, timer_at = (
            (stored[1], stored[2], stored[3]) if stored else (0, NEVER, None)
        )
        bucket = self.bucket_us
        expiry = -(-(int(timestamp.micros) + self.ttl_us) // bucket) * bucket
        seen.add(event_id, expiry)
        ids.add((expiry, event_id))
        if timer_at is None or expiry < timer_at:
            timer_at = expiry
            forget.set(_timestamp(expiry))
        token = random.getrandbits(62)
        head.write((token, count + 1, forgotten, timer_at))
        _SEEN_CACHE.put(key, token, seen)
        yield record

    @on_timer(FORGET)
    def forget_bucket(
        self,
        key: Any = beam.DoFn.KeyParam,
        fired: Any = beam.DoFn.TimestampParam,
        ids: Any = beam.DoFn.StateParam(IDS),
        head: Any = beam.DoFn.StateParam(HEAD),
        forget: Any = beam.DoFn.TimerParam(FORGET),
    ) -> None:
        stored = head.read()
        if stored is None:
            return
        seen = self._load(key, ids, stored)
        now = int(fired.micros)
        seen.forget_until(now)
        count, forgotten = stored[1], max(stored[2], now)
        remembered = len(seen.by_id)
        if count >= max(MIN_ID_COMPACTION, 2 * remembered):
            ids.clear()
            for event_id, expiry in seen.by_id.items():
                ids.add((expiry, event_id))
            count = remembered
        timer_at = seen.next_expiry()
        if timer_at is not None:
            forget.set(_timestamp(timer_at))
        token = random.getrandbits(62)
        head.write((token, count, forgotten, timer_at))
        _SEEN_CACHE.put(key, token, seen)


class DeduplicateByEventId(Stage):
    """Records → the first delivery of each (topic, event_id), remembered for `ttl_s`
    (rounded up to the hour) with at most `shards` timers per topic."""

    RESOURCE_HINTS = DEDUP_HINTS

    def __init__(
        self, ttl_s: int = 24 * 3600, shards: int = DEDUP_SHARDS, bucket_s: int = DEDUP_BUCKET_S
    ) -> None:
        super().__init__()
        self.ttl_s, self.shards, self.bucket_s = ttl_s, shards, bucket_s

    def expand(self, records: PColl) -> PColl:
        shards = self.shards
        first: PColl = (
            records
            | "KeyByIdShard"
            >> beam.Map(lambda r: (f"{r['topic']}/{id_shard(str(r['event_id']), shards)}", r))
            | "FirstDelivery" >> beam.ParDo(_FirstDelivery(self.ttl_s, self.bucket_s))
        )
        return first


class _Tally:
    """Counter increments held until the bundle ends: one Beam counter update costs about
    as much as a change point, so a bundle adds its counts once. The step's frequent
    counts (`rows`, `expiry_rows`, `events`) are plain integers, the rest a dict."""

    def __init__(self, rows: JobCounter, expiry_rows: JobCounter, events: JobCounter) -> None:
        self.counters = (rows, expiry_rows, events)
        self.rows = self.expiry_rows = self.events = 0
        self.pending: dict[JobCounter, int] = {}

    def add(self, counter: JobCounter, n: int = 1) -> None:
        self.pending[counter] = self.pending.get(counter, 0) + n

    def flush(self, reached: tuple[JobEventTime, int] | None = None) -> None:
        """Add the held counts (and the event time `reached`, when given) at once."""
        due = []
        rows, expiry_rows, events = self.counters
        if self.rows:
            due.append((rows, self.rows))
        if self.expiry_rows:
            due.append((expiry_rows, self.expiry_rows))
        if self.events:
            due.append((events, self.events))
        self.rows = self.expiry_rows = self.events = 0
        if self.pending:
            due.extend(self.pending.items())
            self.pending = {}
        if due or reached is not None:
            add_counts(due, reached)


def _built(micros: int) -> Timestamp:
    return Timestamp(micros=micros)


def _direct(micros: int) -> Timestamp:
    """`Timestamp(micros=micros)` with its fields set directly: the constructor's checks
    of its four arguments cost about as much as the rest of a timer set, paid per
    firing. Used only where it builds what the constructor builds (`_timestamp`)."""
    ts: Timestamp = object.__new__(Timestamp)
    ts._precision = Timestamp.MICROS_PRECISION
    ts._seconds, ts._subseconds = divmod(micros, 1_000_000)
    return ts


def _same_timestamps() -> bool:
    for micros in (0, 1, 999_999, 1_000_001, -1, -1_000_001, 1_764_000_000_123_457):
        built, direct = _built(micros), _direct(micros)
        if vars(built) != vars(direct) or direct.micros != micros:
            return False
    return True


_timestamp = _direct if _same_timestamps() else _built
"""A Beam `Timestamp` of `micros` (µs since the epoch)."""


def _micros_of(ts: Timestamp) -> int:
    return int(ts.micros)


def _fields_micros(ts: Timestamp) -> int:
    """`int(ts.micros)` read from its fields for a µs-precision `Timestamp` (the
    property's checks and arithmetic cost a third of a firing's timer handling)."""
    if type(ts) is Timestamp and ts._precision == Timestamp.MICROS_PRECISION:
        return ts._seconds * 1_000_000 + ts._subseconds  # type: ignore[no-any-return]
    return int(ts.micros)


def _same_micros() -> bool:
    for micros in (0, 1, 999_999, 1_000_001, -1, -1_000_001, 1_764_000_000_123_457):
        for ts in (Timestamp(micros=micros), _built(micros)):
            if _fields_micros(ts) != micros or _micros_of(ts) != micros:
                return False
    return _fields_micros(Timestamp(1, 5, precision=3)) == 1_005_000


_micros = _fields_micros if _same_micros() else _micros_of
"""The µs since the epoch of a Beam `Timestamp`."""
_UNSEEN: Any = object()  # a view `_WindowState` has not looked up yet
_getrandbits = random.getrandbits


class _WindowState(beam.DoFn):
    """Views whose kinds all have a running form (`feature_store.core.running`) keep
    their events append-only in a bag, rewritten only when half of it has expired, and a
    small head (emitted time, last label, a token); the running summaries live in the
    worker's memory and are rebuilt from the bag when missing. Other views (the vector
    kinds) keep one `EntityState` per key, rewritten per event."""

    STATE = ReadModifyWriteStateSpec("entity", EntityStateCoder())
    EVENTS = BagStateSpec("events", FastPrimitivesCoder())
    HEAD = ReadModifyWriteStateSpec("head", FastPrimitivesCoder())
    BASE = ReadModifyWriteStateSpec("base", FastPrimitivesCoder())
    CHANGE = TimerSpec("change", TimeDomain.WATERMARK)

    def __init__(
        self,
        plans: Sequence[ViewPlan],
        allowed_lateness_us: int,
        started_us: int,
        coalesce_us: int = COALESCE_US,
        clock_us: int = 0,
    ) -> None:
        self.plans = {p.view: p for p in plans}
        self.clock_us = clock_us
        self.allowed_lateness_us = allowed_lateness_us
        self.started_us = started_us
        self.coalesce_us = max(1, coalesce_us)
        self.late = JobCounter("stream", "events_late")
        self.events = JobCounter("stream", "events_aggregated")
        self.rows = JobCounter("stream", "change_points")
        self.expiry_rows = JobCounter("stream", "change_points_from_timers")
        self.tally = _Tally(self.rows, self.expiry_rows, self.events)
        self.compute_lag = JobDistribution("stream", "publish_to_row_ms")
        self.rebuilds = JobCounter("stream", "state_rebuilds")
        self._runnings: dict[str, RunningWindows | None] = {}
        self.watermark = JobEventTime("stream", WATERMARK_REACHED)
        self._reached = NEVER  # the latest time reached in this bundle, reported at its end

    def _aggregator(self, view: str) -> WindowAggregator:
        # vector kinds pending: the kernel stage (`common.vectors`) evaluates them
        return WindowAggregator(self.plans[view], self.allowed_lateness_us, defer_vectors=True)

    def _running(self, view: str) -> RunningWindows | None:
        if view not in self._runnings:
            plan = self.plans[view]
            self._runnings[view] = (
                RunningWindows(plan, self.allowed_lateness_us) if supported(plan) else None
            )
        return self._runnings[view]

    def process(
        self,
        item: tuple[tuple[str, str], list[dict[str, Any]]],
        state: Any = beam.DoFn.StateParam(STATE),
        events: Any = beam.DoFn.StateParam(EVENTS),
        head: Any = beam.DoFn.StateParam(HEAD),
        base: Any = beam.DoFn.StateParam(BASE),
        change: Any = beam.DoFn.TimerParam(CHANGE),
    ) -> Iterable[Any]:
        """A batch of one key's records: one live event, or its history at warm start.

        History (read back from the archive) is never late: it is what the state must
        hold before the live events, whenever it arrives. The key then jumps to the
        job's start time, emitting the value of now (windows that ended while no stream
        ran included). Returns its outputs as a list (a generator costs more per call)."""
        cache_key, records = item
        view, key = cache_key
        if view == CLOCK:
            change.set(_timestamp(self.started_us + self.clock_us))
            return ()
        running = self._runnings.get(view, _UNSEEN)
        if running is _UNSEEN:
            running = self._running(view)
        loaded = None
        if running is not None:
            loaded = head.read()
            current: Any = self._load(running, cache_key, events, base, loaded)
            emitted_until = current.emitted_until
        else:
            aggregator = self._aggregator(view)
            current = state.read() or aggregator.new_state()
            emitted_until = current.emitted_until
        accepted, late, history, snapshot = self._sort(records, emitted_until)
        out: list[Any] = []
        for record in late:
            self.tally.add(self.late)
            out.append(
                pvalue.TaggedOutput(LATE, (view, key, {**record, "topic": self.plans[view].source}))
            )
        if snapshot is not None:
            if running is None:
                msg = f"view {view!r} has no running form: its warm start takes no snapshot"
                raise ValueError(msg)
            running.merge_base(current, snapshot)
            base.write(running.dump_base(current))  # what a rebuilt state starts from
        if not accepted and snapshot is None:
            if running is not None:
                self._commit(running, cache_key, current, events, head, base, change, (), loaded)
            return out
        self.tally.events += len(accepted)
        until = max(emitted_until, self.started_us) if history else emitted_until
        for record in accepted:
            if record["event_time"] > until:
                until = int(record["event_time"])
        rows: ChangeRows | RowBatch | None
        if running is not None:
            fresh = running.add(current, accepted)
            found = running.advance_rows(current, until, settle=history)
            self._commit(running, cache_key, current, events, head, base, change, fresh, loaded)
            rows = ChangeRows(view, key, running.names, found) if found else None
        else:
            aggregator.add(current, accepted)
            rows = aggregator.advance_to(current, key, until, settle=history)
            self._save(aggregator, current, state, change)
        self._measure(accepted)
        if rows is not None and len(rows):
            self.tally.rows += len(rows)
            out.append(rows)
        return out

    def _sort(
        self, records: list[dict[str, Any]], emitted_until: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool, Any]:
        """A key's batch → (accepted, late, history?, snapshot or None). History (and a
        snapshot) is never late; a live event is when it is older than what the key has
        emitted minus the allowed lateness."""
        horizon = emitted_until - self.allowed_lateness_us
        if len(records) == 1:  # one live event: what a visit usually brings
            record = records[0]
            if "snapshot" not in record and not record.get("history"):
                if emitted_until != NEVER and record["event_time"] < horizon:
                    return [], records, False, None
                return records, [], False, None
        accepted, late, history, snapshot = [], [], False, None
        for record in records:
            if "snapshot" in record:  # the unbounded features over events before the history
                history, snapshot = True, record["snapshot"]
                continue
            if record.get("history"):
                history = True
            elif emitted_until != NEVER and record["event_time"] < horizon:
                late.append(record)
                continue
            accepted.append(record)
        return accepted, late, history, snapshot

    def finish_bundle(self) -> None:
        if self._reached != NEVER:
            # one gauge update per bundle: its rows leave with it
            self.tally.flush((self.watermark, self._reached))
            self._reached = NEVER
        else:
            self.tally.flush()

    def _load(
        self,
        running: RunningWindows,
        key: tuple[str, str],
        events: Any,
        base: Any,
        head: tuple[Any, ...] | None,
    ) -> RunningState:
        if head is None:
            return running.new_state()
        found = _RUNNING_CACHE.take(key, head[0])
        if found is not None:
            return found
        self.tally.add(self.rebuilds)
        return running.rebuild(events.read(), base.read() or (), head[1], head[2])

    def _commit(
        self,
        running: RunningWindows,
        key: tuple[str, str],
        current: RunningState,
        events: Any,
        head: Any,
        base: Any,
        change: Any,
        fresh: Sequence[Event],
        loaded: tuple[Any, ...] | None,
        fired: bool = False,
    ) -> None:
        """Append the new events; rewrite the bag once the stored events reach twice what
        the last rewrite kept (each event is rewritten about once: constant cost). The
        timer is set at the next change point rounded up to `coalesce_us`, and only when
        that moves it: every change point due by then is handled in one firing."""
        if loaded is None:
            count, compact_at, timer_at = 0, MIN_COMPACTION, None
        else:
            count, compact_at = loaded[3], loaded[4]
            timer_at = None if fired or len(loaded) < 6 else loaded[5]
        if fresh:
            add = events.add
            for event in fresh:
                add(event)
            count += len(fresh)
        if count >= compact_at and running.prunable:
            running.drop(current)
            events.clear()
            for event in current.dropping:
                events.add(event)
            base.write(running.dump_base(current))
            count = len(current.dropping)
            compact_at = max(MIN_COMPACTION, 2 * count)
        nxt = current.next_at
        if nxt < FAR:  # the next change point, rounded up, and the timer just after it
            step = self.coalesce_us
            at = -(-nxt // step) * step + AFTER_US
            if at != timer_at:
                change.set(_timestamp(at))
                timer_at = at
        token = _getrandbits(62)
        head.write((token, current.emitted_until, current.last_label, count, compact_at, timer_at))
        cached = _RUNNING_CACHE.entries  # `_RUNNING_CACHE.put`, inline: per visit and firing
        cached[key] = (token, current)
        if len(cached) > _RUNNING_CACHE.capacity:
            _RUNNING_CACHE._evict()

    def _measure(self, records: list[dict[str, Any]]) -> None:
        now_us = None
        for record in records:
            if record.get("publish_us") and not record.get("history"):
                if now_us is None:
                    now_us = time_ns() // 1000
                self.compute_lag.update(int((now_us - record["publish_us"]) / 1000))

    @on_timer(CHANGE)
    def on_change(
        self,
        key: Any = beam.DoFn.KeyParam,
        fired: Any = beam.DoFn.TimestampParam,
        state: Any = beam.DoFn.StateParam(STATE),
        events: Any = beam.DoFn.StateParam(EVENTS),
        head: Any = beam.DoFn.StateParam(HEAD),
        base: Any = beam.DoFn.StateParam(BASE),
        change: Any = beam.DoFn.TimerParam(CHANGE),
    ) -> Iterable[ChangeRows | RowBatch]:
        """The change points due by the timer's time; its outputs as a tuple."""
        view, entity = key
        micros = _micros(fired)
        if view == CLOCK:
            self._reached = max(self._reached, micros)
            tick = micros + self.clock_us
            if tick <= time_ns() // 1000 + CLOCK_AHEAD_US:
                change.set(_timestamp(tick))
            return ()
        at = micros - AFTER_US  # the change points up to here are due
        if at > self._reached:  # noqa: PLR1730 (a builtin call costs twice the test, per firing)
            self._reached = at
        running = self._runnings.get(view, _UNSEEN)
        if running is _UNSEEN:
            running = self._running(view)
        if running is not None:
            loaded = head.read()
            if loaded is None:
                return ()
            current = _RUNNING_CACHE.take(key, loaded[0])
            if current is None:
                current = self._load(running, key, events, base, loaded)
            found = running.advance_rows(current, at)
            self._commit(running, key, current, events, head, base, change, (), loaded, True)
            if found:
                self.tally.expiry_rows += len(found)
                return (ChangeRows(view, entity, running.names, found),)
            return ()
        legacy: EntityState | None = state.read()
        if legacy is None:
            return ()
        aggregator = self._aggregator(view)
        rows = aggregator.advance_to(legacy, entity, at)
        self._save(aggregator, legacy, state, change)
        if len(rows):
            self.tally.expiry_rows += len(rows)
            return (rows,)
        return ()

    @staticmethod
    def _save(aggregator: WindowAggregator, current: EntityState, state: Any, change: Any) -> None:
        nxt = aggregator.next_change(current)
        if nxt is not None:
            change.set(_timestamp(nxt + AFTER_US))
        # Kept even when no event is left: `emitted_until` is what tells a late event.
        state.write(current)


def as_batch(
    item: tuple[tuple[str, str], dict[str, Any]],
) -> tuple[tuple[str, str], list[dict[str, Any]]]:
    return item[0], [item[1]]


class AggregateWindows(Stage):
    """((view, entity), [records]) → change rows (main: `ChangeRows` of the views with
    running windows, `RowBatch`es of the others) and late records (tag `late`)."""

    RESOURCE_HINTS = FEATURE_HINTS

    def __init__(
        self,
        plans: Sequence[ViewPlan],
        allowed_lateness_s: float,
        started_us: int,
        coalesce_s: float = COALESCE_US / 1_000_000,
        clock_s: float | None = None,
    ) -> None:
        """`clock_s`: a clock key whose timer ticks every `clock_s` seconds of event time
        from `started_us`, proving the watermark reached between change points (the
        streaming job's; None: no clock)."""
        super().__init__()
        if clock_s is not None and clock_s <= 0:
            msg = f"clock_s must be positive, got {clock_s}"
            raise ValueError(msg)
        self.plans = list(plans)
        self.allowed_lateness_us = int(allowed_lateness_s * 1_000_000)
        self.started_us = started_us
        self.coalesce_us = int(coalesce_s * 1_000_000)
        self.clock_us = int(clock_s * 1_000_000) if clock_s is not None else 0

    def expand(self, batches: PColl) -> pvalue.DoOutputsTuple:
        if self.clock_us:
            clock = (
                batches.pipeline
                | "Clock" >> beam.Impulse()
                | "ClockKey" >> beam.Map(lambda _: ((CLOCK, ""), []))
            )
            batches = (batches, clock) | "WithClock" >> beam.Flatten()
        outputs: pvalue.DoOutputsTuple = batches | "ExactWindows" >> beam.ParDo(
            _WindowState(
                self.plans,
                self.allowed_lateness_us,
                self.started_us,
                self.coalesce_us,
                self.clock_us,
            )
        ).with_outputs(LATE, main="rows")
        return outputs
