"""Independent expectations for the integration tests: every valid event's record per
(view, entity), and online values read through Feast compared with a brute-force
reading of the window definition."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from feature_store.config import PlatformConfig
from feature_store.core.derived_fields import add_derived
from feature_store.core.plan import ViewPlan
from feature_store.events import Event, validate
from feature_store.reference import REGISTRY
from jobs.retrieval import get_online
from tests.unit.feature_store.core.bruteforce import values_at

VIEWS = ("user_review_stats", "user_activity", "business_review_stats")
US = timedelta(microseconds=1)


def us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // US


def records(messages: Sequence[Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every valid event's record, per (view, entity key), from the raw messages."""
    plans = [ViewPlan.build(REGISTRY, v) for v in VIEWS]
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        event = validate(message.topic, message.raw, message.attributes)
        if not isinstance(event, Event):
            continue
        record = add_derived(event.record(), REGISTRY.derived_fields(message.topic))
        for plan in plans:
            if plan.source == message.topic and record.get(plan.join_key) is not None:
                out[(plan.view, str(record[plan.join_key]))].append(record)
    return out


def same(got: Any, expected: Any) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return got is None or (isinstance(got, float) and math.isnan(got))
    if isinstance(got, str):  # timestamps come back as ISO strings
        return datetime.fromisoformat(got) == datetime(1970, 1, 1, tzinfo=UTC) + expected * US
    return got is not None and math.isclose(float(got), float(expected), rel_tol=1e-9)


def empty(plan: ViewPlan) -> dict[str, Any]:
    """The values of an empty window."""
    return {
        f.name: 0 if f.kind in ("count", "count_distinct", "sum") else None for f in plan.features
    }


def _expected(plan: ViewPlan, events: list[dict[str, Any]], at_us: int) -> dict[str, Any]:
    expected = values_at(plan, events, at_us)
    for f in plan.features:  # Feast's online UnixTimestamp: whole seconds
        if f.dtype.value == "TIMESTAMP" and expected[f.name] is not None:
            expected[f.name] -= expected[f.name] % 1_000_000
    return expected


def _instants(plan: ViewPlan, events: list[dict[str, Any]], lo: int, hi: int) -> list[int]:
    """`lo`, `hi` and every change point of these events in between."""
    points = {lo, hi}
    for event in events:
        for w in (0, *plan.windows):
            if lo < event["event_time"] + w <= hi:
                points.add(event["event_time"] + w)
    return sorted(points)


def check_online(
    platform: PlatformConfig,
    messages: Sequence[Any],
    at_us: int | None = None,
    store: str | None = None,
    keys_per_view: int | None = None,
    since_us: int | None = None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Asserts that every entity's online value equals the definition at `at_us` — or,
    when None, at some instant while it was read (values also change as events leave
    their windows during a read), or from `since_us` on when given: the event time a
    running stream's rows were proven complete to just before the read (a value that
    changes as an event leaves its window is written once the watermark passed that
    time, a second or two after the wall clock) — and returns the rows read."""
    per_key = records(messages)
    rows_read: dict[tuple[str, str], dict[str, Any]] = {}
    for view in VIEWS:
        plan = ViewPlan.build(REGISTRY, view)
        keys = sorted(k for v, k in per_key if v == view)[:keys_per_view]
        before = at_us if at_us is not None else us(datetime.now(UTC))
        if at_us is None and since_us is not None:
            before = min(before, since_us)
        rows = get_online(
            platform,
            [f"{view}:{f.name}" for f in plan.features],
            [{plan.join_key: k} for k in keys],
            store,
        )
        after = at_us if at_us is not None else us(datetime.now(UTC))
        for key, row in zip(keys, rows, strict=True):
            events = per_key[(view, key)]
            candidates = [
                _expected(plan, events, t) for t in _instants(plan, events, before, after)
            ]
            assert any(
                all(same(row[f"{view}__{n}"], v) for n, v in expected.items())
                for expected in candidates
            ), (store, view, key, row, candidates)
            rows_read[(view, key)] = row
    return rows_read
