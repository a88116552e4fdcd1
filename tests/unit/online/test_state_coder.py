"""The streaming state's versioned coder: exact round trips, and a job that continues from
decoded state emits what it would have emitted from the original."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.core.plan import ViewPlan
from feature_store.core.windows import EntityState, WindowAggregator
from feature_store.reference import REGISTRY
from online.state_coder import VERSION, EntityStateCoder

US = 1_000_000


def _review(i: int, t_s: int, rating: int | None, business: str | None) -> dict[str, object]:
    return {
        "event_id": f"e{i:03d}",
        "event_type": "review_created",
        "event_time": t_s * US,
        "user_id": "u1",
        "business_id": business,
        "rating": rating,
        "device": "ios" if i % 2 else None,
        "text": "good food" if i % 3 else "",
    }


def _state_after(plan: ViewPlan, events: list[dict[str, object]], t_s: int) -> EntityState:
    aggregator = WindowAggregator(plan, allowed_lateness=60 * US)
    state = aggregator.new_state()
    aggregator.add(state, events)
    aggregator.advance_to(state, "u1", t_s * US)
    return state


def _same_state(a: EntityState, b: EntityState) -> None:
    assert (a.emitted_until, a.dirty_from, a.last_label) == (
        b.emitted_until,
        b.dirty_from,
        b.last_label,
    )
    assert a.base == b.base
    np.testing.assert_array_equal(a.events.times, b.events.times)
    assert a.events.times.dtype == b.events.times.dtype
    assert a.events.event_ids.tolist() == b.events.event_ids.tolist()
    assert a.events.columns.keys() == b.events.columns.keys()
    for name, col in a.events.columns.items():
        other = b.events.columns[name]
        assert col.dtype == other.dtype and col.shape == other.shape, name
        if col.dtype == object:
            assert col.tolist() == other.tolist(), name
        else:
            np.testing.assert_array_equal(col, other)


@pytest.mark.parametrize("view", ["user_review_stats", "business_review_stats"])
def test_round_trip_is_exact_and_the_job_continues_identically(view: str) -> None:
    plan = ViewPlan.build(REGISTRY, view)
    events = [_review(i, 10 * i, None if i % 5 == 0 else 1 + i % 5, f"b{i % 3}") for i in range(40)]
    state = _state_after(plan, events, 300)
    coder = EntityStateCoder()
    decoded = coder.decode(coder.encode(state))
    _same_state(state, decoded)

    more = [_review(100 + i, 280 + 7 * i, 1 + i % 5, f"b{i % 4}") for i in range(10)]
    rows = []
    for current in (state, decoded):
        aggregator = WindowAggregator(plan, allowed_lateness=60 * US)
        aggregator.add(current, more)
        rows.append(aggregator.advance_to(current, "u1", 10_000 * US))
    np.testing.assert_array_equal(rows[0].valid_from, rows[1].valid_from)
    for name, col in rows[0].values.items():
        np.testing.assert_array_equal(col, rows[1].values[name])
    _same_state(state, decoded)


def test_an_empty_state_and_a_folded_one_round_trip() -> None:
    plan = ViewPlan.build(REGISTRY, "user_review_stats")
    coder = EntityStateCoder()
    empty = WindowAggregator(plan).new_state()
    _same_state(empty, coder.decode(coder.encode(empty)))
    folded = EntityState(events=empty.events, base={"a": (3.0, 1.5, 2.25), "b": ("text",)})
    assert coder.decode(coder.encode(folded)).base == folded.base


def test_another_format_version_is_refused_naming_it() -> None:
    plan = ViewPlan.build(REGISTRY, "user_review_stats")
    encoded = bytearray(EntityStateCoder().encode(WindowAggregator(plan).new_state()))
    encoded[0] = VERSION + 1
    with pytest.raises(ValueError, match=f"format {VERSION + 1}"):
        EntityStateCoder().decode(bytes(encoded))
