"""The trivial pipeline's drain is timed between samples, never as NaN once it ended."""

import math

from bench.freshness import _crossed_at


def test_a_crossing_is_interpolated_between_the_samples_around_it() -> None:
    samples = [(0.0, 0), (0.1, 0), (0.2, 1000), (0.3, 2000)]
    assert math.isclose(_crossed_at(samples, 500), 0.15)
    assert math.isclose(_crossed_at(samples, 2000), 0.3)
    assert math.isclose(_crossed_at(samples, 1000), 0.2)


def test_a_drain_within_one_sample_interval_still_has_a_duration() -> None:
    samples = [(0.0, 0), (0.1, 2000), (0.2, 2000)]
    quarter, last = _crossed_at(samples, 500), _crossed_at(samples, 2000)
    assert math.isclose(last - quarter, 0.075)


def test_a_count_never_reached_or_reached_at_the_first_sample() -> None:
    assert math.isnan(_crossed_at([(0.0, 0), (0.1, 10)], 11))
    assert _crossed_at([(5.0, 20), (5.1, 30)], 10) == 5.0
    assert math.isnan(_crossed_at([], 1))
