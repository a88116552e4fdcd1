"""What the streaming step hands downstream for a view with running windows:
`ChangeRows` of Python values, read by the writers' stage as the numpy batches are."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from apache_beam.utils.timestamp import Timestamp
from hypothesis import HealthCheck, given, settings

from common.metrics import (
    JobCounter,
    JobEventTime,
    add_counts,
    local_counts,
    local_event_time,
    reset_local,
)
from common.vectors import _Resolve
from feature_store.core.running import RunningWindows
from feature_store.core.windows import ChangeRows
from online.from_rows import online_rows
from online.stateful import _built, _Cache, _timestamp
from tests.unit.feature_store.core.window_cases import PLAN, events_strategy


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy)
def test_change_rows_become_the_online_rows_of_the_batch(events: list[dict[str, Any]]) -> None:
    """Every kind, nulls included: the same `OnlineRow`s from the Python values as from
    the numpy batch of the same rows (the form the backfill and the vector kinds use)."""
    running = RunningWindows(PLAN)
    state = running.new_state()
    running.add(state, events)
    while (nxt := running.next_change(state)) is not None:
        rows = running.advance_rows(state, nxt)
        if not rows:
            continue
        light = running.change_rows("k", rows)
        assert len(light) == len(rows)
        assert light.row(0) == dict(zip(PLAN.feature_names, rows[0][1], strict=True))
        for latest_only in (True, False):
            got = online_rows(PLAN, light, latest_only)
            want = online_rows(PLAN, running.batch("k", rows), latest_only)
            assert got == want


def test_change_rows_pickle_and_must_name_the_plans_features() -> None:
    light = ChangeRows("things_view", "k", ("n_short",), [(5, (1,))])
    back = pickle.loads(pickle.dumps(light))
    assert (back.view, back.entity_key, back.names, back.rows) == (
        "things_view",
        "k",
        ("n_short",),
        [(5, (1,))],
    )
    with pytest.raises(ValueError, match="n_short"):
        online_rows(PLAN, light)


def test_the_vector_stage_passes_change_rows_through() -> None:
    light = ChangeRows("things_view", "k", ("n_short",), [(5, (1,))])
    assert list(_Resolve("test").process([light])) == [light]


def test_a_timer_time_is_the_constructors_timestamp() -> None:
    for micros in (0, 7, 1_000_001, -3, -2_000_001, 1_764_000_000_123_457):
        ts = _timestamp(micros)
        assert ts == _built(micros) == Timestamp(micros=micros)
        assert ts.micros == micros
        assert vars(ts) == vars(Timestamp(micros=micros))


def test_a_bundles_counts_are_added_at_once() -> None:
    reset_local()
    a, b = JobCounter("test", "change_rows_a"), JobCounter("test", "change_rows_b")
    add_counts([(a, 3), (b, 1)])
    add_counts([(a, 2)])
    counts = local_counts()
    assert (counts["change_rows_a"], counts["change_rows_b"]) == (5, 1)


def test_a_bundles_event_time_is_added_with_its_counts() -> None:
    reset_local()
    a, gauge = JobCounter("test", "change_rows_a"), JobEventTime("test", "reached_us")
    add_counts([(a, 1)], (gauge, 50))
    add_counts([], (gauge, 40))  # an earlier time reported later: the latest stays
    assert local_counts()["change_rows_a"] == 1
    assert local_event_time("reached_us") == 50


def test_the_cache_gives_a_state_back_only_under_its_token_and_keeps_the_newest() -> None:
    cache: _Cache[str] = _Cache(capacity=3)
    cache.put("a", 1, "state a")
    assert cache.take("a", 2) is None  # another commit's token: rebuilt from Beam's state
    assert cache.take("a", 1) is None  # taken out by the failed take: nothing stale stays
    for i, key in enumerate("bcdef"):
        cache.put(key, i, f"state {key}")
    assert list(cache.entries) == ["d", "e", "f"]
    assert cache.take("e", 3) == "state e"
    assert cache.take("e", 3) is None  # taken: the bundle puts it back when it commits
