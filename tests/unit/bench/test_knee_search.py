"""The knee search narrows to the job's capacity in the phases it has, wherever it starts."""

from __future__ import annotations

import pytest

from bench.freshness import KNEE_RESOLUTION, KNEE_START, KNEE_STEPS, Phase, next_knee_rate

SECONDS = 20.0


def _phase(rate: int, capacity: float) -> Phase:
    """A phase of a job that takes in at most `capacity` events a second: below it every
    event is taken in at once; above it the intake is what an overloaded job manages
    (90% of the capacity) and the backlog is never drained."""
    published = round(rate * SECONDS)
    if rate <= capacity:
        intake, taken_in = float(rate), published
    else:
        intake, taken_in = 0.9 * capacity, round(0.9 * capacity * SECONDS)
    return Phase(
        rate,
        "knee search",
        seconds=SECONDS,
        published=published,
        steady=(round(intake * 15), 15.0),
        taken_in=taken_in,
    )


def _search(ceiling: float, capacity: float, steps: int) -> list[Phase]:
    phases: list[Phase] = []
    rate = round(KNEE_START * ceiling)
    for _ in range(steps):
        phases.append(_phase(rate, capacity))
        following = next_knee_rate(phases)
        if following is None:
            break
        rate = following
    return phases


@pytest.mark.parametrize(
    ("ceiling", "capacity"),
    [(8624, 300), (8624, 415), (2484, 232), (260, 120), (1000, 900), (400, 1000)],
)
def test_the_knee_is_within_the_resolution_of_the_capacity(ceiling: float, capacity: float) -> None:
    phases = _search(ceiling, capacity, KNEE_STEPS[0])
    held = [p.rate for p in phases if p.held]
    assert held, [(p.rate, p.held) for p in phases]
    knee = max(held)
    assert knee <= capacity
    if any(not p.held for p in phases):
        assert knee >= capacity / (KNEE_RESOLUTION * 1.15), [(p.rate, p.held) for p in phases]


def test_the_search_stops_once_held_and_failed_are_close() -> None:
    phases = [_phase(300, 320), _phase(340, 320)]
    assert next_knee_rate(phases) is None


def test_a_rate_that_failed_is_followed_by_less_than_its_intake() -> None:
    phases = [_phase(2156, 415)]
    following = next_knee_rate(phases)
    assert following is not None
    assert following < 0.9 * 415
