"""The streaming step under Beam's TestStream: the watermark fires expiry timers, a late
event goes to the late output, history arriving after live events corrects the online
value, and re-deliveries are dropped. Expected rows are read off the definition: a
10 s count changes at each event's time and 10 s later."""

from __future__ import annotations

import random
import time
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.test_stream import TestStream as EventStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from common.metrics import local_event_time, reset_local
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import ChangeRows
from feature_store.definitions import DType, Entity, EventField, Feature, FeatureView, Source, count
from feature_store.registry import Registry
from online.stateful import (
    CLOCK_AHEAD_US,
    LATE,
    WATERMARK_REACHED,
    AggregateWindows,
    DeduplicateByEventId,
)

US = 1_000_000
SOURCE = Source(
    name="things",
    topic="things",
    event_types=("a",),
    fields=(
        EventField(name="event_id", dtype=DType.STRING),
        EventField(name="event_type", dtype=DType.STRING),
        EventField(name="event_time", dtype=DType.TIMESTAMP),
        EventField(name="key", dtype=DType.STRING),
    ),
)
VIEW = FeatureView(
    name="v",
    entity="thing",
    source="things",
    features=(Feature(name="n", aggregation=count(), window="10s"),),
)
PLAN = ViewPlan.build(
    Registry(entities=(Entity(name="thing", join_key="key"),), sources=(SOURCE,), views=(VIEW,)),
    "v",
)


def _record(event_id: str, t_s: float, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_time": int(t_s * US), "key": "k", **extra}


def _batch(arrives_s: float, *records: dict[str, Any]) -> TimestampedValue:
    return TimestampedValue((("v", "k"), list(records)), arrives_s)


def _pipeline() -> BeamTestPipeline:
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    return BeamTestPipeline(options=options)


def _rows(batch: Any) -> list[tuple[float, int]]:
    """The step's rows of a running view: `ChangeRows` of Python values."""
    assert isinstance(batch, ChangeRows)
    return [(at / US, values[batch.names.index("n")]) for at, values in batch.rows]


def _run(stream: EventStream, lateness_s: float = 0.0) -> tuple[Any, Any, BeamTestPipeline]:
    p = _pipeline()
    out = p | stream | AggregateWindows([PLAN], lateness_s, started_us=0)
    return out.rows | beam.FlatMap(_rows), out[LATE], p


def test_the_watermark_fires_expiry_timers() -> None:
    stream = (
        EventStream()
        .add_elements([_batch(1, _record("e1", 1))])
        .add_elements([_batch(3, _record("e2", 3))])
        .advance_watermark_to(100)
        .advance_watermark_to_infinity()
    )
    rows, late, p = _run(stream)
    assert_that(rows, equal_to([(1, 1), (3, 2), (11, 1), (13, 0)]), label="rows")
    assert_that(late, equal_to([]), label="late")
    p.run()


def test_fired_timers_report_the_watermark_they_prove() -> None:
    """The change timers fire at e1's expiry (11 s) and e2's (13 s): the step's watermark
    had passed 13 s, so its rows are complete up to 13 s; nothing fires later (no event
    is left in a window), whatever the watermark does after."""
    stream = (
        EventStream()
        .add_elements([_batch(1, _record("e1", 1))])
        .add_elements([_batch(3, _record("e2", 3))])
        .advance_watermark_to(12)
        .advance_watermark_to(100)
        .advance_watermark_to_infinity()
    )
    reset_local()
    rows, _, p = _run(stream)
    assert_that(rows, equal_to([(1, 1), (3, 2), (11, 1), (13, 0)]), label="rows")
    p.run()
    assert local_event_time(WATERMARK_REACHED) == 13 * US


def _reached_after_a_restart(clock_s: float | None) -> tuple[int, int | None]:
    """A restart after every change point: history alone, long expired, so no key's timer
    is left to fire. Returns the job's start and the watermark the step proved."""
    started_s = time.time_ns() // 1_000_000_000
    stream = (
        EventStream()
        .add_elements([_batch(started_s, _record("h1", started_s - 3600, history=True))])
        .advance_watermark_to(started_s + 5)
        .advance_watermark_to_infinity()
    )
    reset_local()
    p = _pipeline()
    out = p | stream | AggregateWindows([PLAN], 0.0, started_us=started_s * US, clock_s=clock_s)
    assert_that(
        out.rows | beam.FlatMap(_rows),
        equal_to([(started_s - 3600, 1), (started_s, 0)]),
        label="rows",
    )
    p.run()
    return started_s * US, local_event_time(WATERMARK_REACHED)


def test_the_clock_proves_the_watermark_when_no_value_changes() -> None:
    """Without the clock nothing proves how far the step got (no timer fires); with it, a
    tick every 2 s of event time does, up to a minute past the wall clock, where it stops
    (the watermark of a finished input jumps to the end of time)."""
    started_us, unproven = _reached_after_a_restart(None)
    assert unproven is None
    started_us, reached = _reached_after_a_restart(2.0)
    assert reached is not None
    assert started_us + 4 * US <= reached <= time.time_ns() // 1000 + CLOCK_AHEAD_US
    assert (reached - started_us) % (2 * US) == 0


def test_a_late_event_goes_to_the_late_output() -> None:
    stream = (
        EventStream()
        .add_elements([_batch(50, _record("e1", 50))])
        .add_elements([_batch(51, _record("old", 5))])
        .advance_watermark_to(100)
        .advance_watermark_to_infinity()
    )
    rows, late, p = _run(stream)
    assert_that(rows, equal_to([(50, 1), (60, 0)]), label="rows")
    late_ids = late | beam.MapTuple(lambda view, key, record: (view, key, record["event_id"]))
    assert_that(late_ids, equal_to([("v", "k", "old")]), label="late")
    p.run()


def test_history_after_live_events_corrects_the_value() -> None:
    """Live e1 at 20 s, then history h1 at 15 s: at 20 s the count is 2, not 1. The
    correction is labelled just after the row it corrects (20 s + 1 ms), and the
    expiries follow: h1's at 25 s, e1's at 30 s."""
    stream = (
        EventStream()
        .add_elements([_batch(20, _record("e1", 20))])
        .add_elements([_batch(21, _record("h1", 15, history=True))])
        .advance_watermark_to(100)
        .advance_watermark_to_infinity()
    )
    rows, late, p = _run(stream)
    assert_that(rows, equal_to([(20, 1), (20.001, 2), (25, 1), (30, 0)]), label="rows")
    assert_that(late, equal_to([]), label="late")
    p.run()


def test_re_deliveries_pass_once() -> None:
    records = [
        {"topic": "things", "event_id": "a", "event_time": 1},
        {"topic": "things", "event_id": "b", "event_time": 2},
        {"topic": "things", "event_id": "a", "event_time": 1},
        {"topic": "other", "event_id": "a", "event_time": 1},
    ]
    stream = (
        EventStream()
        .add_elements([TimestampedValue(r, 1 + i) for i, r in enumerate(records)])
        .advance_watermark_to_infinity()
    )
    p = _pipeline()
    passed = p | stream | DeduplicateByEventId(ttl_s=3600)
    ids = passed | beam.Map(lambda r: (r["topic"], r["event_id"]))
    assert_that(ids, equal_to([("things", "a"), ("things", "b"), ("other", "a")]))
    p.run()


HOUR = 3600


def test_a_re_delivery_is_dropped_for_24_hours_then_forgotten() -> None:
    """Remembered for 24 h of event time rounded up to the hour: a copy 23 h later is
    dropped; once the watermark passes 24 h + the bucket, the id is forgotten."""
    first = {"topic": "things", "event_id": "a", "event_time": 1}
    stream = (
        EventStream()
        .add_elements([TimestampedValue(first, 10)])
        .advance_watermark_to(10 + 23 * HOUR)
        .add_elements([TimestampedValue({**first, "copy": 1}, 10 + 23 * HOUR)])
        .advance_watermark_to(10 + 26 * HOUR)
        .add_elements([TimestampedValue({**first, "copy": 2}, 10 + 26 * HOUR)])
        .advance_watermark_to_infinity()
    )
    p = _pipeline()
    passed = p | stream | DeduplicateByEventId(ttl_s=24 * HOUR, shards=4, bucket_s=HOUR)
    copies = passed | beam.Map(lambda r: r.get("copy", 0))
    assert_that(copies, equal_to([0, 2]))
    p.run()


class _Value:
    def __init__(self) -> None:
        self.value: Any = None

    def read(self) -> Any:
        return self.value

    def write(self, value: Any) -> None:
        self.value = value


class _Bag:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def read(self) -> list[Any]:
        return list(self.items)

    def add(self, item: Any) -> None:
        self.items.append(item)

    def clear(self) -> None:
        self.items = []


class _Timer:
    def __init__(self, log: list[tuple[str, int]], key: str) -> None:
        self.at: int | None = None
        self.log, self.key = log, key

    def set(self, ts: Any) -> None:
        self.at = int(ts.micros)
        self.log.append((self.key, self.at))


def test_de_duplication_sets_a_bounded_number_of_timers() -> None:
    """20,000 ids over three days of event time (one in ten delivered twice, the copy
    within the hour), 8 shards, hourly buckets: every first delivery passes once, every
    copy is dropped, and the timers set stay within one per shard per hour, not one per
    id. Midway the worker's memory is cleared, so the ids are read back from the bags."""
    from apache_beam.utils.timestamp import Timestamp

    from online.stateful import _SEEN_CACHE, _FirstDelivery, id_shard

    rng = random.Random(5)
    shards, span_s = 8, 3 * 24 * HOUR
    dofn = _FirstDelivery(ttl_s=24 * HOUR, bucket_s=HOUR)
    deliveries: list[tuple[int, str]] = []
    for i in range(20_000):
        t = i * span_s // 20_000
        deliveries.append((t, f"id{i}"))
        if i % 10 == 0:
            deliveries.append((t + rng.randrange(HOUR), f"id{i}"))
    deliveries.sort()
    sets: list[tuple[str, int]] = []
    cells = {f"things/{s}": (_Bag(), _Value(), _Timer(sets, f"things/{s}")) for s in range(shards)}
    passed: list[str] = []
    for n, (t, event_id) in enumerate(deliveries):
        now = t * US
        for key, (ids, head, timer) in cells.items():  # the watermark reaches `t`
            while timer.at is not None and timer.at <= now:
                at, timer.at = timer.at, None
                dofn.forget_bucket(
                    key=key, fired=Timestamp(micros=at), ids=ids, head=head, forget=timer
                )
        if n == len(deliveries) // 2:
            _SEEN_CACHE.entries.clear()
        key = f"things/{id_shard(event_id, shards)}"
        ids, head, timer = cells[key]
        record = {"topic": "things", "event_id": event_id}
        out = dofn.process(
            (key, record), timestamp=Timestamp(micros=now), ids=ids, head=head, forget=timer
        )
        passed.extend(r["event_id"] for r in out)
    assert sorted(passed) == sorted(f"id{i}" for i in range(20_000))
    hours = span_s // HOUR + 25
    assert len(sets) <= shards * hours
    assert len(sets) < 20_000 // 10
    stored = sum(len(ids.items) for ids, _, _ in cells.values())
    assert stored < 2 * 24 * 20_000 // 72 + shards * 256  # about two days of ids at most


def test_change_points_within_a_second_share_one_firing() -> None:
    """Events at 1.2 s and 1.5 s leave the 10 s window at 11.2 s and 11.5 s: one timer,
    just after 12 s, emits both rows, each at its exact time."""
    from apache_beam.utils.timestamp import Timestamp

    from online.stateful import _WindowState

    dofn = _WindowState([PLAN], allowed_lateness_us=0, started_us=0)
    sets: list[tuple[str, int]] = []
    timer = _Timer(sets, "v/k")
    cells = {"state": _Value(), "events": _Bag(), "head": _Value(), "base": _Value()}
    rows: list[tuple[float, int]] = []
    for event_id, t in (("e1", 1.2), ("e2", 1.5)):
        for batch in dofn.process((("v", "k"), [_record(event_id, t)]), change=timer, **cells):
            rows.extend(_rows(batch))
    firings = 0
    while timer.at is not None:
        at, timer.at = timer.at, None
        firings += 1
        out = dofn.on_change(key=("v", "k"), fired=Timestamp(micros=at), change=timer, **cells)
        for batch in out:
            rows.extend(_rows(batch))
    assert rows == [(1.2, 1), (1.5, 2), (11.2, 1), (11.5, 0)]
    assert firings == 1
    assert sets == [("v/k", 12 * US + 1)]


def test_an_event_at_a_timers_time_is_not_a_correction() -> None:
    """The local runner fires a timer once the watermark is at its time, while an event
    at that very time is still on time. The change timer is set just after its change
    points, so the event at 12 s comes before the expiry at 12 s is emitted: at 12 s one
    event left and one came (no change, no row) and every row keeps its own time. (A
    timer at 12 s emitted a count of 0 at 12 s that the definition never gives, then
    the event's row as a correction labelled after it, and each later row after that:
    a burst's rows all shifted by the label step.)"""
    from apache_beam.utils.timestamp import Timestamp

    from online.stateful import _WindowState

    dofn = _WindowState([PLAN], allowed_lateness_us=0, started_us=0)
    sets: list[tuple[str, int]] = []
    timer = _Timer(sets, "v/k")
    cells = {"state": _Value(), "events": _Bag(), "head": _Value(), "base": _Value()}
    rows: list[tuple[float, int]] = []
    for event_id, t in (("e1", 2.0), ("e2", 12.0), ("e3", 12.001)):
        now = int(t * US)
        while timer.at is not None and timer.at <= now:  # the watermark is at `now`
            at, timer.at = timer.at, None
            fired = Timestamp(micros=at)
            for batch in dofn.on_change(key=("v", "k"), fired=fired, change=timer, **cells):
                rows.extend(_rows(batch))
        for batch in dofn.process((("v", "k"), [_record(event_id, t)]), change=timer, **cells):
            rows.extend(_rows(batch))
    assert rows == [(2.0, 1), (12.001, 2)]
