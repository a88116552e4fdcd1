"""A snapshot of the unbounded features (folded up to a cut, in pieces, through JSON) plus
the events after the cut gives the values of all events: against the brute force."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_store.core.running import RunningWindows
from feature_store.core.snapshot import DAY_US, combine, combine_bases, snapshot_cut
from tests.unit.feature_store.core.test_running import _drain
from tests.unit.feature_store.core.test_windows import (
    PLAN,
    W,
    as_rows,
    check_at,
    check_newest,
    events_strategy,
)

KINDS = [c.feature.kind for c in RunningWindows(PLAN).unbounded]


def _snapshot(running: RunningWindows, before: list[dict[str, Any]], split: int) -> Any:
    """Folded in two pieces, combined, and through the table's JSON."""
    unique = {e["event_id"]: running.event_of(e) for e in before}
    events = sorted(unique.values())
    a, b = running.fold_base(events[:split]), running.fold_base(events[split:])
    return json.loads(json.dumps(combine_bases(KINDS, a, b)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy, st.integers(0, 6 * W), st.integers(0, 30))
def test_snapshot_then_later_events_equal_brute_force(
    events: list[dict[str, Any]], cut: int, split: int
) -> None:
    running = RunningWindows(PLAN, tie_step=1)
    before = [e for e in events if e["event_time"] <= cut]
    state = running.new_state()
    running.merge_base(state, _snapshot(running, before, split))
    running.add(state, [e for e in events if e["event_time"] > cut])
    # as the stream's warm start: the key settles at the cut, then its timers fire
    rows = as_rows(running.advance_to(state, "k", cut, settle=True))
    _drain(running, state, rows)
    for t in range(cut + 3 * W, 13 * W):  # bounded windows hold no event up to the cut
        check_at(rows, events, t)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy, st.integers(0, 6 * W), st.integers(0, 30))
def test_snapshot_arriving_after_live_events_corrects_the_value(
    events: list[dict[str, Any]], cut: int, split: int
) -> None:
    """Live events first (history arrives whenever it does), then the snapshot."""
    running = RunningWindows(PLAN, tie_step=1)
    after = sorted((e for e in events if e["event_time"] > cut), key=lambda e: e["event_time"])
    state = running.new_state()
    rows: list[tuple[int, dict[str, Any]]] = []
    for event in after:
        running.add(state, [event])
        rows += as_rows(running.advance_to(state, "k", event["event_time"]))
    running.merge_base(state, _snapshot(running, [e for e in events if e not in after], split))
    rows += as_rows(running.advance_to(state, "k", max(state.emitted_until, cut), settle=True))
    _drain(running, state, rows)
    check_newest(rows, events, 20 * W)


def test_combine_each_kind_is_the_fold_of_the_union() -> None:
    assert combine("count", (2,), (3,)) == (5,)
    assert combine("share", (4, 1), (2, 2)) == (6, 3)
    assert combine("mean", (1, "8", "64"), (2, "4", "8")) == (3, "12", "72")
    assert dict(combine("count_distinct", (("p", 1),), (("p", 2), ("q", 1)))) == {"p": 3, "q": 1}
    assert dict(combine("max", ((3.0, 1),), ((5.0, 2),))) == {3.0: 1, 5.0: 2}
    assert combine("last", (10, "b", "x"), (10, "a", "y")) == (10, "b", "x")
    assert combine("last", (), (7, "a", "z")) == (7, "a", "z")


def test_the_cut_leaves_the_longest_window_and_a_day_of_lateness() -> None:
    end = 40 * DAY_US + 5
    cut = snapshot_cut(7 * DAY_US, end)
    assert cut == 32 * DAY_US  # 40 d - 7 d - 1 d, at midnight
    assert cut <= end - 7 * DAY_US - DAY_US
