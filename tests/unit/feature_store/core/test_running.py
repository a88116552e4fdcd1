"""The running (constant cost per event) windows against the brute force and against the
whole-window state machine, with events in any order, late ones and re-deliveries."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_store.core.plan import ViewPlan
from feature_store.core.running import RunningWindows, exact, supported
from feature_store.core.windows import compute_rows
from feature_store.reference import REGISTRY
from tests.unit.feature_store.core.window_cases import (
    PLAN,
    W,
    as_rows,
    check_at,
    check_newest,
    events_strategy,
)


def _drain(running: RunningWindows, state: Any, rows: list[Any]) -> None:
    while (nxt := running.next_change(state)) is not None:
        rows += as_rows(running.advance_to(state, "k", nxt))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events_strategy,
    st.randoms(use_true_random=False),
    st.integers(0, 3 * W),
    st.sampled_from([1, 2, 1024]),
)
def test_incremental_in_any_order_equals_brute_force(
    events: list[dict[str, Any]], rnd: Any, lateness: int, trim_at: int
) -> None:
    """`trim_at`: how many entered events every window has left before they are
    forgotten (1: at every advance, so late events land in a trimmed list)."""
    running = RunningWindows(PLAN, allowed_lateness=lateness, tie_step=1, trim_at=trim_at)
    state = running.new_state()
    rows: list[tuple[int, dict[str, Any]]] = []
    pending = sorted(events, key=lambda e: e["event_time"] + rnd.randint(0, lateness))
    clock = -1
    for i, event in enumerate(pending):
        clock = max(clock, event["event_time"])
        running.add(state, [event])
        rows += as_rows(running.advance_to(state, "k", clock))
        check_newest(rows, pending[: i + 1], clock)
        running.drop(state)
    _drain(running, state, rows)
    check_newest(rows, events, 20 * W)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy)
def test_in_order_rows_are_the_batch_rows(events: list[dict[str, Any]]) -> None:
    """All events at once, then every timer: the very rows of `compute_rows`."""
    running = RunningWindows(PLAN)
    state = running.new_state()
    running.add(state, events)
    rows: list[tuple[int, dict[str, Any]]] = []
    _drain(running, state, rows)
    expected = as_rows(compute_rows(PLAN, "k", events))
    assert [vf for vf, _ in rows] == [vf for vf, _ in expected]
    for t in range(-1, 13 * W):
        check_at(rows, events, t)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy, st.integers(1, 4 * W))
def test_one_advance_over_many_change_points_gives_every_row(
    events: list[dict[str, Any]], step: int
) -> None:
    """Advances that each cross many change points (a timer firing late, a coalesced
    one): every row, not only the newest, is the batch's (a leave reads again only its
    window's features, the others come from the row just before)."""
    running = RunningWindows(PLAN)
    state = running.new_state()
    running.add(state, events)
    rows: list[tuple[int, dict[str, Any]]] = []
    t = min((e["event_time"] for e in events), default=0) - 1
    while running.next_change(state) is not None:
        t += step
        rows += as_rows(running.advance_to(state, "k", t))
    expected = as_rows(compute_rows(PLAN, "k", events))
    assert [vf for vf, _ in rows] == [vf for vf, _ in expected]
    for t in range(-1, 13 * W):
        check_at(rows, events, t)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy, st.integers(1, 30), st.integers(0, 2 * W))
def test_a_state_rebuilt_from_storage_goes_on_exactly(
    events: list[dict[str, Any]], cut: int, lateness: int
) -> None:
    """What the stream keeps (held events, the base of dropped ones, the emitted time)
    rebuilds a state that emits what the original would have."""
    ordered = sorted(events, key=lambda e: e["event_time"])
    first, rest = ordered[:cut], ordered[cut:]
    running = RunningWindows(PLAN, allowed_lateness=lateness, tie_step=1, trim_at=1)
    state = running.new_state()
    rows: list[tuple[int, dict[str, Any]]] = []
    stored: dict[str, Any] = {}
    for event in first:
        for fresh in running.add(state, [event]):
            stored[fresh[1]] = fresh
        rows += as_rows(running.advance_to(state, "k", event["event_time"]))
    running.drop(state)
    kept = [stored[i] for i in state.held]
    again = running.rebuild(kept, running.dump_base(state), state.emitted_until, state.last_label)
    assert again.current == state.current
    for event in rest:
        running.add(again, [event])
        rows += as_rows(
            running.advance_to(again, "k", max(event["event_time"], again.emitted_until))
        )
    _drain(running, again, rows)
    check_newest(rows, events, 20 * W)


def test_exact_sums_do_not_drift() -> None:
    """Adding and removing leaves the exact sum of what stays: math.fsum's rounding."""
    stay = [0.1, 0.3, 1e-300, 2.5, 1 / 3]
    total = sum(exact(x) for x in [*stay, 1e16, -7e15]) - exact(1e16) - exact(-7e15)
    assert total / (1 << 1074) == math.fsum(stay)
    assert exact(0.1) + exact(0.2) - exact(0.1) == exact(0.2)


def test_scalar_reference_views_run_incrementally_and_vector_views_do_not() -> None:
    assert supported(ViewPlan.build(REGISTRY, "business_review_stats"))
    assert supported(ViewPlan.build(REGISTRY, "user_review_stats"))
    assert supported(ViewPlan.build(REGISTRY, "review_content"))
    assert not supported(ViewPlan.build(REGISTRY, "user_content_stats"))
