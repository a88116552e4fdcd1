"""Many entities in one pass (`compute_rows_many`) against one entity at a time and the
brute force."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_store.core import change_rows
from feature_store.core.change_rows import KeyedEvents, compute_rows_many
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch, compute_rows
from feature_store.definitions import (
    Condition,
    Entity,
    Feature,
    FeatureView,
    count,
    count_distinct,
    last,
    max_,
    mean,
    min_,
    share,
    stddev,
    sum_,
)
from feature_store.reference import REGISTRY
from feature_store.registry import Registry
from tests.unit.feature_store.core.bruteforce import values_at
from tests.unit.feature_store.core.window_cases import IS_A, SOURCE, W, in_units_of_w, same

VIEW = FeatureView(
    name="things_view",
    entity="thing",
    source="things",
    features=(
        Feature(name="n_short", aggregation=count(), window=f"{W}s"),
        Feature(name="n_a", aggregation=count(where=IS_A), window=f"{3 * W}s"),
        Feature(name="sum_x", aggregation=sum_("x"), window=f"{2 * W}s"),
        Feature(name="mean_x", aggregation=mean("x", where=IS_A), window=f"{3 * W}s"),
        Feature(name="sd_x", aggregation=stddev("x"), window=f"{2 * W}s"),
        Feature(name="tags", aggregation=count_distinct("tag"), window=f"{2 * W}s"),
        Feature(name="tags_ever", aggregation=count_distinct("tag")),
        Feature(name="max_x", aggregation=max_("x"), window=f"{W}s"),
        Feature(name="min_x_ever", aggregation=min_("x")),
        Feature(name="last_tag", aggregation=last("tag"), window=f"{2 * W}s"),
        Feature(name="last_x_ever", aggregation=last("x")),
        Feature(
            name="share_3",
            aggregation=share(Condition(field="x", equals=3), where=IS_A),
            window=f"{W}s",
        ),
        Feature(name="newest", aggregation=max_("event_time")),
        Feature(name="oldest_recent", aggregation=min_("event_time"), window=f"{2 * W}s"),
        Feature(name="n_all", aggregation=count()),
        Feature(name="mean_all", aggregation=mean("x")),
    ),
)
REG = Registry(entities=(Entity(name="thing", join_key="key"),), sources=(SOURCE,), views=(VIEW,))
PLAN = in_units_of_w(ViewPlan.build(REG, "things_view"))

event = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["k1", "k2", "k3", "k4"]),
        "event_id": st.integers(0, 30).map(lambda i: f"e{i:02d}"),
        "event_type": st.sampled_from(["a", "b"]),
        "event_time": st.integers(-2 * W, 8 * W),
        "x": st.one_of(st.none(), st.integers(1, 5)),
        "tag": st.one_of(st.none(), st.sampled_from(["p", "q", "r"])),
    }
)
# Ids repeat within and across entities: copies with other content, and exact re-deliveries.
events_strategy = st.lists(event, max_size=40).flatmap(
    lambda evs: (
        st.lists(st.sampled_from(evs), max_size=5).map(lambda dupes: evs + dupes)
        if evs
        else st.just(evs)
    )
)
cut = st.one_of(st.none(), st.integers(-3 * W, 12 * W))


def keyed(events: list[dict[str, Any]]) -> KeyedEvents:
    return KeyedEvents.from_records([(e["key"], e) for e in events], PLAN.fields)


def assert_same_batch(got: RowBatch, want: RowBatch) -> None:
    assert got.view == want.view and got.entity_key == want.entity_key
    assert got.valid_from.tolist() == want.valid_from.tolist()
    for name, expected in want.values.items():
        actual = got.values[name]
        assert actual.dtype == expected.dtype, name
        if expected.dtype == object:
            assert actual.tolist() == expected.tolist(), name
        else:
            assert np.array_equal(actual, expected, equal_nan=True), name


def assert_same_as_one_at_a_time(
    events: list[dict[str, Any]], start: int | None, end: int | None
) -> dict[str, RowBatch]:
    batches = {b.entity_key: b for b in compute_rows_many(PLAN, keyed(events), start, end)}
    for key in sorted({e["key"] for e in events}):
        mine = [e for e in events if e["key"] == key]
        want = compute_rows(PLAN, key, mine, start, end)
        if len(want) == 0:
            assert key not in batches
        else:
            assert_same_batch(batches[key], want)
    return batches


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy, cut, cut)
def test_many_entities_at_once_equal_one_at_a_time(
    events: list[dict[str, Any]], start: int | None, end: int | None
) -> None:
    assert_same_as_one_at_a_time(events, start, end)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy)
def test_many_entities_at_once_equal_brute_force_at_every_time(
    events: list[dict[str, Any]],
) -> None:
    batches = {b.entity_key: b for b in compute_rows_many(PLAN, keyed(events))}
    for key in {e["key"] for e in events}:
        mine = [e for e in events if e["key"] == key]
        rows = batches[key]
        for t in range(-3 * W, 13 * W):
            at = np.flatnonzero(rows.valid_from <= t)
            for feature in PLAN.features:
                expected = values_at(PLAN, mine, t)[feature.name]
                if at.shape[0] == 0:  # before the first row: the empty window
                    assert expected in (None, 0), (key, t, feature.name)
                    continue
                got = rows.values[feature.name][at[-1]]
                assert same(got, expected), (key, t, feature.name, got, expected)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(events_strategy, cut)
def test_entities_split_over_several_passes_give_the_same_rows(
    monkeypatch: pytest.MonkeyPatch, events: list[dict[str, Any]], start: int | None
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(change_rows, "MAX_PACKED_EVENTS", 3)
        assert_same_as_one_at_a_time(events, start, None)


def test_no_events_no_rows() -> None:
    assert compute_rows_many(PLAN, keyed([])) == []


def test_concat_keeps_every_part() -> None:
    first = [{"key": "k1", "event_id": "a", "event_type": "a", "event_time": 1, "x": 1, "tag": "p"}]
    second = [
        {"key": "k2", "event_id": "b", "event_type": "b", "event_time": 2, "x": None, "tag": None}
    ]
    both = KeyedEvents.concat([keyed(first), keyed(second)])
    assert both.keys.tolist() == ["k1", "k2"]
    assert np.isnan(both.columns["x"][1])
    assert_same_batch(compute_rows_many(PLAN, both)[1], compute_rows(PLAN, "k2", second))


def test_far_apart_entities_and_a_hot_key_stay_exact_and_vectorised() -> None:
    plan = ViewPlan.build(REGISTRY, "user_review_stats")
    rng = np.random.default_rng(0)
    day = 86_400_000_000
    hot = [
        {
            "event_id": f"h{i}",
            "event_type": "review_created",
            "event_time": int(t),
            "rating": int(rng.integers(1, 6)),
            "business_id": f"b{i % 50}",
            "device_id": None,
        }
        for i, t in enumerate(rng.integers(0, 200 * day, size=100_000))
    ]
    cold = [
        {
            "event_id": f"c{i}",
            "event_type": "review_created",
            "event_time": 40_000 * day + i * day,
            "rating": 3,
            "business_id": "b1",
            "device_id": f"d{i % 2}",
        }
        for i in range(20)
    ]
    events = KeyedEvents.from_records(
        [("hot", e) for e in hot] + [("cold", e) for e in cold], plan.fields
    )
    got = {b.entity_key: b for b in compute_rows_many(plan, events)}
    for key, mine in (("hot", hot), ("cold", cold)):
        want = compute_rows(plan, key, mine)
        assert got[key].valid_from.tolist() == want.valid_from.tolist()
        for name, values in want.values.items():
            assert np.array_equal(got[key].values[name], values, equal_nan=True), name
