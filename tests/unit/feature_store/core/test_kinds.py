"""Aggregation kinds as single objects: the registry, a user's own kind, folding."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.core import kinds
from feature_store.core.aggregation import Evaluation
from feature_store.core.plan import FeaturePlan, ViewPlan
from feature_store.core.windows import WindowAggregator, compute_rows
from feature_store.definitions import (
    Aggregation,
    AggregationKind,
    DType,
    Entity,
    EventField,
    Feature,
    FeatureView,
    Source,
    aggregation_kind,
    count,
)
from feature_store.errors import FeatureDefinitionError
from feature_store.registry import Registry

SOURCE = Source(
    name="things",
    topic="things",
    event_types=("a",),
    fields=(
        EventField(name="event_id", dtype=DType.STRING),
        EventField(name="event_type", dtype=DType.STRING),
        EventField(name="event_time", dtype=DType.TIMESTAMP),
        EventField(name="key", dtype=DType.STRING),
        EventField(name="x", dtype=DType.INT64),
    ),
)


def _range(ev: Evaluation, f: FeaturePlan) -> np.ndarray:
    """max - min of the window's non-null values (a user's kind for the test)."""
    lo, hi = ev.bounds(f.window)
    x = ev.column(f.field or "")
    mask = ev.mask(f, non_null=True)
    out = np.full(ev.points.shape[0], np.nan)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        chosen = x[a:b][mask[a:b]]
        if chosen.shape[0]:
            out[i] = float(chosen.max() - chosen.min())
    return out


def _plan(*features: Feature) -> ViewPlan:
    view = FeatureView(name="v", entity="thing", source="things", features=features)
    reg = Registry(
        entities=(Entity(name="thing", join_key="key"),), sources=(SOURCE,), views=(view,)
    )
    return ViewPlan.build(reg, "v")


def _event(i: int, t_s: int, x: int) -> dict[str, object]:
    return {"event_id": f"e{i}", "event_type": "a", "event_time": t_s * 1_000_000, "x": x}


def test_every_built_in_kind_is_one_registered_object() -> None:
    for kind in kinds.BUILT_IN:
        assert aggregation_kind(kind.name) is kind
        assert kinds.kind_of(kind.name) is kind
    foldable = {k.name for k in kinds.BUILT_IN if k.foldable}
    assert foldable == {"count", "sum", "mean", "stddev", "max", "min", "last", "share"}


def test_a_users_kind_registers_in_one_place_and_computes() -> None:
    kinds.register(
        kinds.Kind(
            name="value_range",
            needs_field=True,
            numeric_field=True,
            output=DType.FLOAT64,
            evaluate=_range,
        )
    )
    plan = _plan(
        Feature(name="r", aggregation=Aggregation(kind="value_range", field="x"), window="10s")
    )
    events = [_event(1, 1, 4), _event(2, 3, 9), _event(3, 20, 5)]
    rows = compute_rows(plan, "k", events)
    values = {
        int(t) // 1_000_000: float(v)
        for t, v in zip(rows.valid_from, rows.values["r"], strict=True)
    }
    # 1s: {4} -> 0; 3s: {4, 9} -> 5; 11s: {9} -> 0; 13s: {} -> null; 20s: {5} -> 0
    assert values[1] == 0.0 and values[3] == 5.0 and values[11] == 0.0 and values[20] == 0.0
    assert np.isnan(values[13])
    assert not plan.prunable or all(f.window is not None for f in plan.features)


def test_a_kind_declared_without_computation_fails_naming_it() -> None:
    from feature_store.definitions import register_kind

    register_kind(AggregationKind(name="declared_only", needs_field=False, output=DType.INT64))
    plan = _plan(
        Feature(name="d", aggregation=Aggregation(kind="declared_only"), window="10s"),
    )
    with pytest.raises(FeatureDefinitionError, match="declared_only"):
        compute_rows(plan, "k", [_event(1, 1, 1)])
    kinds.register_implementation("declared_only", kinds.kind_of("count").evaluate)
    rows = compute_rows(plan, "k", [_event(1, 1, 1), _event(2, 2, 1)])
    assert [int(v) for v in rows.values["d"]] == [1, 2, 1, 0]


def test_unbounded_non_foldable_kind_keeps_every_event() -> None:
    kinds.register(
        kinds.Kind(
            name="range_ever",
            needs_field=True,
            numeric_field=True,
            output=DType.FLOAT64,
            evaluate=_range,
        )
    )
    plan = _plan(
        Feature(name="n", aggregation=count(), window="1s"),
        Feature(name="r", aggregation=Aggregation(kind="range_ever", field="x")),
    )
    assert not plan.prunable
    aggregator = WindowAggregator(plan)
    state = aggregator.new_state()
    aggregator.add(state, [_event(1, 1, 2), _event(2, 5, 7)])
    rows = aggregator.advance_to(state, "k", 100 * 1_000_000)
    assert len(state.events) == 2  # nothing dropped: the range needs every event
    assert float(rows.values["r"][-1]) == 5.0


def test_foldable_view_drops_events_into_each_kinds_summary() -> None:
    plan = _plan(
        Feature(name="n", aggregation=count(), window="1s"),
        Feature(name="n_all", aggregation=count()),
    )
    assert plan.prunable
    aggregator = WindowAggregator(plan)
    state = aggregator.new_state()
    aggregator.add(state, [_event(1, 1, 2), _event(2, 5, 7)])
    aggregator.advance_to(state, "k", 100 * 1_000_000)
    assert len(state.events) == 0
    assert state.base == {"n_all": (2.0,)}
