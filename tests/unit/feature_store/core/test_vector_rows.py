"""The vector kinds deferred to the kernel stage: the exact steps find the change points
from signatures, `vector_rows.resolve` evaluates them, and the rows are the definition's.

Tolerances (float32 kernels against the float64 numpy brute force of `bruteforce.py`):
cosine similarities within 1e-5 absolute, centroid distances within 1e-4 absolute
(vectors of norm about 1 to 20; see test_linalg.py). The rows themselves (which change
points, their labels) must be identical to the undeferred computation's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_store.core import linalg
from feature_store.core.change_rows import KeyedEvents, compute_rows_many
from feature_store.core.plan import ViewPlan
from feature_store.core.vector_rows import resolve
from feature_store.core.windows import NEVER, RowBatch, WindowAggregator, compute_rows
from feature_store.reference import REGISTRY
from tests.unit.feature_store.core.bruteforce import values_at

DAY_US = 86_400_000_000
UNIT = 10  # a day of the reference windows is 10 µs here: 7d → 70 µs, 30d → 300 µs
_BUILT = ViewPlan.build(REGISTRY, "user_content_stats")
PLAN = ViewPlan(
    **{
        **_BUILT.__dict__,
        "features": tuple(
            type(f)(
                **{**f.__dict__, "window": None if f.window is None else f.window // DAY_US * UNIT}
            )
            for f in _BUILT.features
        ),
    }
)
DIM = 384
SIM_TOL, DIST_TOL = 1e-5, 1e-4


def _events(spec: list[tuple[str, int, int, bool, int]], seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 20)
    out = []
    for n, (key, t, sentiment, has_vec, kind) in enumerate(spec):
        vec = rng.normal(size=DIM).astype(np.float32) * scale
        out.append(
            {
                "key": key,
                "user_id": key,
                "event_id": f"e{n:03d}",
                "event_time": t,
                "event_type": "review_created" if kind else "review_flagged",
                "sentiment": sentiment / 2,
                "embedding_semantic": vec.tolist() if has_vec else None,
            }
        )
    return out


event = st.tuples(
    st.sampled_from(["u1", "u2", "u3"]),
    st.integers(0, 400),
    st.integers(-2, 2),
    st.booleans(),  # False: a review without an embedding (null vector)
    st.integers(0, 4),  # 0: a flagged review, outside the view
)


def _close(name: str, got: float, want: Any) -> None:
    if want is None:
        assert math.isnan(got), (name, got)
        return
    tol = SIM_TOL if name == "max_text_similarity_7d" else DIST_TOL
    if name == "avg_sentiment_7d":
        tol = 1e-12
    assert abs(got - want) <= tol, (name, got, want)


def _check_against_brute_force(batch: RowBatch, mine: list[dict[str, Any]]) -> None:
    assert batch.pending is None
    for i, t in enumerate(batch.valid_from.tolist()):
        want = values_at(PLAN, mine, t)
        for name, value in want.items():
            _close(name, float(batch.values[name][i]), value)


VECTOR_FEATURES = ("max_text_similarity_7d", "centroid_distance_30d")


def _same_rows(got: RowBatch, want: RowBatch) -> None:
    """The same change points; the same values, the vector features' within float32
    rounding (the JAX kernels reduce in an order that depends on what is batched with a
    user: 7e-9 apart was seen)."""
    assert got.valid_from.tolist() == want.valid_from.tolist()
    for name, col in want.values.items():
        if name in VECTOR_FEATURES:
            ok = np.allclose(got.values[name], col, rtol=0, atol=1e-6, equal_nan=True)
        else:
            ok = np.array_equal(got.values[name], col, equal_nan=True)
        assert ok, name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.lists(event, max_size=30), seed=st.integers(0, 2**16))
def test_deferred_batch_rows_equal_the_undeferred_rows_and_the_brute_force(
    spec: list[tuple[str, int, int, bool, int]], seed: int
) -> None:
    events = _events(spec, seed)
    keyed = KeyedEvents.from_records([(e["key"], e) for e in events], PLAN.fields)
    deferred = compute_rows_many(PLAN, keyed, defer_vectors=True)
    assert all(b.pending is not None for b in deferred)
    resolved = {b.entity_key: b for b in resolve(deferred)}
    for key in sorted({e["key"] for e in events}):
        mine = [e for e in events if e["key"] == key]
        want = compute_rows(PLAN, key, mine)
        if len(want) == 0:
            assert key not in resolved
            continue
        _same_rows(resolved[key], want)
        _check_against_brute_force(resolved[key], mine)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=st.lists(event, max_size=25),
    seed=st.integers(0, 2**16),
    shuffle=st.randoms(use_true_random=False),
    lateness=st.integers(0, 80),
)
def test_the_streaming_state_machine_deferred_gives_the_same_latest_values(
    spec: list[tuple[str, int, int, bool, int]], seed: int, shuffle: Any, lateness: int
) -> None:
    """Events arrive one by one, out of order within the lateness; the rows emitted at
    each step, resolved by the kernel stage, equal the undeferred step's rows."""
    events = [e for e in _events(spec, seed) if e["key"] == "u1"]
    shuffle.shuffle(events)
    plain = WindowAggregator(PLAN, lateness)
    deferred = WindowAggregator(PLAN, lateness, defer_vectors=True)
    s_plain, s_deferred = plain.new_state(), deferred.new_state()
    for record in events:
        horizon = s_plain.emitted_until - lateness
        if s_plain.emitted_until != NEVER and record["event_time"] < horizon:
            continue  # late: the job sends it to the late output
        plain.add(s_plain, [record])
        deferred.add(s_deferred, [record])
        until = max(s_plain.emitted_until, record["event_time"])
        want = plain.advance_to(s_plain, "u1", until)
        got = resolve([deferred.advance_to(s_deferred, "u1", until)])
        if len(want) == 0:
            assert got == []
        else:
            _same_rows(got[0], want)
    nxt = plain.next_change(s_plain)
    if nxt is not None:
        want = plain.advance_to(s_plain, "u1", nxt + 400)
        got = resolve([deferred.advance_to(s_deferred, "u1", nxt + 400)])
        assert len(got) == (1 if len(want) else 0)
        if got:
            _same_rows(got[0], want)


def test_a_varied_stream_of_users_compiles_a_handful_of_times() -> None:
    """Users with 1, 7 and 300 reviews, resolved bundle by bundle: the kernel of the
    features is traced a bounded number of times, not once per user or size."""
    rng = np.random.default_rng(7)
    before = linalg.traces().get("newest_band", 0)
    sizes = [1, 7, 300, 2, 7, 1, 300, 13, 64, 5, 150, 1] * 3
    for bundle in range(0, len(sizes), 4):
        batches = []
        for n_reviews in sizes[bundle : bundle + 4]:
            times = np.sort(rng.integers(0, 40 * n_reviews + 1, size=n_reviews))
            spec = [("u", int(t), 1, True, 1) for t in times]
            events = _events(spec, int(rng.integers(0, 2**16)))
            keyed = KeyedEvents.from_records([(e["key"], e) for e in events], PLAN.fields)
            batches += compute_rows_many(PLAN, keyed, defer_vectors=True)
        assert resolve(batches)
    compiled = linalg.traces().get("newest_band", 0) - before
    # 36 users in 9 bundles; (band width, rows) are bucketed to powers of two, so a
    # handful of shapes (3 when this was written), not one per user, size or bundle
    assert compiled <= 8, linalg.traces()
