"""The aggregation core against an independent brute-force computation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_store.core.plan import ViewPlan
from feature_store.core.windows import WindowAggregator, compute_rows
from feature_store.definitions import Aggregation, DerivedField
from feature_store.reference import REGISTRY
from tests.unit.feature_store.core.bruteforce import values_at
from tests.unit.feature_store.core.window_cases import (
    PLAN,
    W,
    as_rows,
    check_at,
    check_newest,
    events_strategy,
    row_value_at,
    same,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy)
def test_batch_rows_equal_brute_force_at_every_time(events: list[dict[str, Any]]) -> None:
    rows = as_rows(compute_rows(PLAN, "k", events))
    for t in range(-1, 13 * W):
        check_at(rows, events, t)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy, st.randoms(use_true_random=False), st.integers(0, 3 * W))
def test_incremental_in_any_order_equals_brute_force(
    events: list[dict[str, Any]], rnd: Any, lateness: int
) -> None:
    """Events arrive shuffled, within the allowed lateness of the emitted time."""
    aggregator = WindowAggregator(PLAN, allowed_lateness=lateness, tie_step=1)
    state = aggregator.new_state()
    rows: list[tuple[int, dict[str, Any]]] = []
    pending = sorted(events, key=lambda e: e["event_time"] + rnd.randint(0, lateness))
    clock = -1
    for i, event in enumerate(pending):
        clock = max(clock, event["event_time"])
        aggregator.add(state, [event])
        rows += as_rows(aggregator.advance_to(state, "k", clock))
        # the online value read now (the newest row) equals the definition at now
        check_newest(rows, pending[: i + 1], clock)
    while (nxt := aggregator.next_change(state)) is not None:
        rows += as_rows(aggregator.advance_to(state, "k", nxt))
        check_newest(rows, events, nxt)
    check_newest(rows, events, 20 * W)


def test_boundaries_event_at_t_minus_w_is_out_and_at_t_is_in() -> None:
    hour = 3_600_000_000
    plan = ViewPlan.build(REGISTRY, "user_review_stats")
    events = [
        {
            "event_id": "a",
            "event_type": "review_created",
            "event_time": 0,
            "rating": 4,
            "business_id": "b1",
            "device_id": None,
        }
    ]
    batch = compute_rows(plan, "u", events)
    valid_from = batch.valid_from.tolist()
    assert valid_from == [0, hour, 24 * hour, 7 * 24 * hour]
    counts = batch.values["review_count_1h"].tolist()
    assert counts == [1, 0, 0, 0]  # at t = 0 + 1h exactly the event is out
    assert batch.values["review_count_24h"].tolist() == [1, 1, 0, 0]
    assert batch.values["last_review_at"].tolist() == [0, 0, 0, 0]
    assert np.isnan(batch.values["avg_rating_7d"][-1])  # empty window: mean is null
    assert batch.values["rating_stddev_7d"][0] == 0.0  # one event: stddev 0


def test_equal_timestamps_are_ordered_by_event_id_and_duplicates_count_once() -> None:
    plan = ViewPlan.build(REGISTRY, "review_content")
    events = [
        {"event_id": "b", "event_type": "review_created", "event_time": 5, "text_length": 20},
        {"event_id": "a", "event_type": "review_created", "event_time": 5, "text_length": 10},
        {"event_id": "b", "event_type": "review_created", "event_time": 5, "text_length": 20},
    ]
    batch = compute_rows(plan, "r", events)
    assert batch.valid_from.tolist() == [5]
    assert batch.values["text_length"].tolist() == [20]  # newest = last by event_id
    stats = compute_rows(
        ViewPlan.build(REGISTRY, "user_review_stats"),
        "u",
        [{**e, "rating": 5, "business_id": "x", "device_id": "d"} for e in events],
    )
    assert stats.values["review_count_1h"].tolist()[0] == 2


def test_vector_kinds_match_brute_force() -> None:
    plan = ViewPlan.build(REGISTRY, "user_content_stats")
    rng = np.random.default_rng(3)
    day = 86_400_000_000
    events = [
        {
            "event_id": f"e{i}",
            "event_type": "review_created",
            "event_time": int(rng.integers(0, 40 * day)),
            "sentiment": float(rng.uniform(-1, 1)),
            "embedding_semantic": rng.normal(size=384).astype(np.float32).tolist(),
        }
        for i in range(25)
    ]
    batch = compute_rows(plan, "u", events)
    rows = as_rows(batch)
    for t in [*batch.valid_from[::3], 50 * day]:
        expected = values_at(plan, events, int(t))
        got = row_value_at(rows, int(t))
        assert got is not None
        for name, value in expected.items():
            assert same(got[name], value) or math.isclose(got[name], value, rel_tol=1e-5), name


def test_a_key_with_100k_events_is_fast_enough_to_be_vectorised() -> None:
    plan = ViewPlan.build(REGISTRY, "user_review_stats")
    rng = np.random.default_rng(0)
    times = rng.integers(0, 200 * 86_400_000_000, size=100_000)
    events = [
        {
            "event_id": f"e{i}",
            "event_type": "review_created",
            "event_time": int(t),
            "rating": int(rng.integers(1, 6)),
            "business_id": f"b{i % 50}",
            "device_id": None,
        }
        for i, t in enumerate(times)
    ]
    batch = compute_rows(plan, "u", events)
    # every event time and every expiry is a change point of some count
    assert len(batch) == len(
        np.unique(
            np.concatenate([times + w for w in (0, 3_600_000_000, 86_400_000_000, 604_800_000_000)])
        )
    )


@pytest.mark.parametrize("view", [v.name for v in REGISTRY.views])
def test_every_reference_view_compiles(view: str) -> None:
    plan = ViewPlan.build(REGISTRY, view)
    assert plan.feature_names == tuple(f.name for f in REGISTRY.view(view).features)


def test_derived_field_declared_for_text_length() -> None:
    assert isinstance(REGISTRY.field_of("review-events", "text_length"), DerivedField)
    assert Aggregation(kind="count").describe() == "count()"
