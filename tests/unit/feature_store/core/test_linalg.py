"""The JAX kernels against float64 numpy brute force, and their compilation count.

Tolerances (float32 on the device against float64): cosine similarities and RBF values
within 1e-5 absolute; distances within 1e-4 absolute for vectors of norm about 1 to 20
(the Euclidean kernel expands |x|² − 2x·y + |y|², which loses about 1e-7 · |x|²);
PCA components within 1e-4 of scikit-learn's float64 ones up to sign.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store.core import linalg

DAY = 86_400_000_000


def _brute_features(
    times: list[int], ids: list[str], vecs: np.ndarray, t: int, window: int | None
) -> tuple[float, float]:
    """(max similarity, centroid distance) at t from a direct reading of FEATURES.md."""
    order = sorted(range(len(times)), key=lambda i: (times[i], ids[i]))
    inside = [i for i in order if times[i] <= t and (window is None or times[i] > t - window)]
    if not inside:
        return np.nan, np.nan
    newest = vecs[inside[-1]].astype(np.float64)
    others = [vecs[i].astype(np.float64) for i in inside[:-1]]
    sims = [float(o @ newest / (np.linalg.norm(o) * np.linalg.norm(newest))) for o in others]
    members = np.array([vecs[i] for i in inside], dtype=np.float64)
    distance = float(np.linalg.norm(newest - members.mean(axis=0)))
    return (max(sims) if sims else np.nan), distance


events = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 10_000)), min_size=0, max_size=40)


@settings(max_examples=40, deadline=None)
@given(events=events, seed=st.integers(0, 2**16), sim_w=st.integers(1, 6), cen_w=st.integers(1, 9))
def test_both_features_equal_brute_force_at_every_change_point(
    events: list[tuple[int, int]], seed: int, sim_w: int, cen_w: int
) -> None:
    rng = np.random.default_rng(seed)
    times = [t for t, _ in events]  # few distinct times: many ties, broken by event_id
    ids = [f"e{n:05d}-{i}" for i, (_, n) in enumerate(events)]
    vecs = rng.normal(size=(len(events), 6)).astype(np.float32) * rng.uniform(0.1, 20)
    base = np.array(times, dtype=np.int64)
    points = np.unique(np.concatenate([base, base + sim_w, base + cen_w, base - 1, [100]]))
    got = linalg.vector_features(
        base, ids, vecs, points, similarity_window=sim_w, centroid_window=cen_w
    )
    scale = 1.0 + float(np.abs(vecs).max(initial=0.0))
    for j, t in enumerate(points.tolist()):
        sim, _ = _brute_features(times, ids, vecs, t, sim_w)
        _, cen = _brute_features(times, ids, vecs, t, cen_w)
        assert np.isnan(sim) == np.isnan(got.similarity[j]), (t, sim, got.similarity[j])
        assert np.isnan(cen) == np.isnan(got.centroid_distance[j]), t
        if not np.isnan(sim):
            assert abs(got.similarity[j] - sim) <= 1e-5, (t, sim, got.similarity[j])
        if not np.isnan(cen):
            assert abs(got.centroid_distance[j] - cen) <= 1e-5 * scale, (t, cen)


def test_long_windows_are_chunked_and_unbounded_windows_read_everything() -> None:
    rng = np.random.default_rng(1)
    n = 2600  # a window longer than one chunk of offsets (2048)
    times = np.arange(n, dtype=np.int64)
    ids = [f"e{i:05d}" for i in range(n)]
    vecs = rng.normal(size=(n, 8)).astype(np.float32)
    vecs[5] = vecs[n - 1] * 3  # the best match lies in the first chunk of offsets
    points = np.array([n - 1, n // 2], dtype=np.int64)
    got = linalg.vector_features(
        times, ids, vecs, points, similarity_window=None, centroid_window=10_000
    )
    for j, t in enumerate(points.tolist()):
        sim, cen = _brute_features(times.tolist(), ids, vecs, t, None)
        assert abs(got.similarity[j] - sim) <= 1e-5
        assert abs(got.centroid_distance[j] - cen) <= 1e-4
    assert got.similarity[0] == pytest.approx(1.0, abs=1e-6)


def test_null_vectors_are_skipped_and_one_review_has_no_similarity() -> None:
    vecs = np.array([[1.0, 0.0], [np.nan, np.nan], [3.0, 4.0]], dtype=np.float32)
    got = linalg.newest_vector_stats(vecs, np.ones(3, bool), [0, 0, 1, 2], [1, 3, 3, 2])
    # [0,1): one vector; [0,3): rows 0 and 2; [1,3): row 2 only; [2,2): empty
    assert np.isnan(got.similarity[0])
    assert got.similarity[1] == pytest.approx(0.6, abs=1e-6)
    assert np.isnan(got.similarity[2]) and np.isnan(got.similarity[3])
    assert got.centroid_distance[0] == 0.0
    assert got.centroid_distance[1] == pytest.approx(np.hypot(1.0, 2.0), abs=1e-6)
    assert got.centroid_distance[2] == 0.0 and np.isnan(got.centroid_distance[3])


def test_a_varied_stream_of_entities_compiles_a_handful_of_times() -> None:
    rng = np.random.default_rng(2)
    before = linalg.traces().get("newest_band", 0)
    for size in [1, 7, 300, 2, 3, 5, 9, 17, 33, 120, 250, 1, 64, 4, 11, 280, 40, 6]:
        times = np.sort(rng.integers(0, 30 * DAY, size))
        vecs = rng.normal(size=(size, 384)).astype(np.float32)
        points = np.unique(np.concatenate([times, times + 7 * DAY, times + 30 * DAY]))
        linalg.vector_features(
            times,
            [f"e{i}" for i in range(size)],
            vecs,
            points,
            similarity_window=7 * DAY,
            centroid_window=30 * DAY,
        )
    compiled = linalg.traces()["newest_band"] - before
    assert 1 <= compiled <= 16, compiled  # 18 entities of sizes 1..300, 40+ calls


def test_the_gathered_vectors_add_one_shape_per_power_of_two_of_their_rows() -> None:
    """The newest-review kernel gathers from the batch's vectors, padded to a power of two
    (VECTOR_MIN_ROWS at least): the same windows over 300 to 9,000 stacked rows trace it
    once per bucket, and again over the same counts not at all; the values stay the
    brute force's, whatever the padding."""
    rng = np.random.default_rng(4)
    counts = [300, 700, 1_500, 3_000, 5_000, 9_000]
    buckets = {max(linalg.VECTOR_MIN_ROWS, linalg.bucket(n, cap=1 << 40)) for n in counts}
    before = linalg.traces().get("newest_band", 0)
    for _ in range(2):
        for n in counts:
            vecs = rng.normal(size=(n, 40)).astype(np.float32)  # no other newest-review test has it
            newest, first = np.array([n - 1, n // 2]), np.array([n - 5, n // 2 - 3])
            found = linalg.stats_at(vecs, np.ones(n, dtype=bool), newest, first)
            for k, (at, start) in enumerate(zip(newest, first, strict=True)):
                window = vecs[start : at + 1].astype(np.float64)
                unit = window / np.linalg.norm(window, axis=1, keepdims=True)
                similarity = float((unit[:-1] @ unit[-1]).max())
                distance = float(np.linalg.norm(window[-1] - window.mean(axis=0)))
                assert found.similarity[k] == pytest.approx(similarity, abs=1e-5)
                assert found.centroid_distance[k] == pytest.approx(distance, abs=1e-4)
    assert linalg.traces()["newest_band"] - before == len(buckets) == 5


def test_pairwise_kernels_equal_numpy_and_compile_once_per_bucket() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=(13, 24))
    before = linalg.traces().get("euclidean", 0)
    for n in [1, 3, 5, 7, 8]:  # one bucket (8 rows) for all of them
        x = rng.normal(size=(n, 24)) * 3
        want = np.sqrt(((x[:, None] - y) ** 2).sum(-1))
        assert np.abs(linalg.euclidean_distances(x, y) - want).max() <= 1e-4
        cos = (x / np.linalg.norm(x, axis=1)[:, None]) @ (y / np.linalg.norm(y, axis=1)[:, None]).T
        assert np.abs(linalg.cosine_similarity(x, y) - cos).max() <= 1e-5
        assert np.abs(linalg.rbf(x, y, 0.01) - np.exp(-0.01 * want**2)).max() <= 1e-5
    assert linalg.traces()["euclidean"] - before == 1
    assert linalg.cosine_similarity(np.zeros((1, 24)), y).tolist() == [[0.0] * 13]


def test_pca_matches_scikit_learn_float64_and_chunks_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(700, 40)) @ rng.normal(size=(40, 40)) + 5.0
    want = decomposition.PCA(n_components=6, svd_solver="full").fit(x)
    fit = linalg.pca_fit(x, 6)
    signs = np.sign((fit.components * want.components_).sum(axis=1))
    assert np.abs(fit.components * signs[:, None] - want.components_).max() <= 1e-4
    assert np.allclose(fit.explained_variance, want.explained_variance_, rtol=1e-4)
    projected = linalg.pca_transform(fit, x) * signs
    assert np.abs(projected - want.transform(x)).max() <= 1e-3
    monkeypatch.setattr(linalg, "ROW_CAP", 64)  # the same fit from eleven chunks
    chunked = linalg.pca_fit(x, 6)
    assert np.abs(chunked.components - fit.components).max() <= 1e-4


def test_fused_pairwise_equals_numpy_and_compiles_once_per_bucket() -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(size=(11, 24)) * 2
    before = linalg.traces().get("pairwise", 0)
    for n in [9, 12, 16]:  # one bucket (16 rows)
        x = rng.normal(size=(n, 24)) * 3
        x[0] = 0.0  # a zero row: similarity 0, distance its norm
        got = linalg.pairwise(x, y, 0.02)
        dist = np.sqrt(((x[:, None] - y) ** 2).sum(-1))
        lengths = np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(y, axis=1)[None, :]
        cos = np.divide(x @ y.T, lengths, out=np.zeros_like(lengths), where=lengths > 0)
        assert np.abs(got.euclidean - dist).max() <= 1e-4
        assert np.abs(got.cosine - cos).max() <= 1e-5
        assert np.abs(got.rbf - np.exp(-0.02 * dist**2)).max() <= 1e-5
        assert got.cosine[0].tolist() == [0.0] * 11
        assert np.abs(linalg.pairwise(x, y).rbf - np.exp(-(dist**2) / 24)).max() <= 1e-5
    assert linalg.traces()["pairwise"] - before == 1


def test_fused_pca_fit_transform_equals_scikit_learn_and_the_two_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 40)) @ rng.normal(size=(40, 40)) + 5.0
    want = decomposition.PCA(n_components=5, svd_solver="full").fit(x)
    before = linalg.traces().get("pca_one", 0)
    fit, projected = linalg.pca_fit_transform(x, 5)
    signs = np.sign((fit.components * want.components_).sum(axis=1))
    assert np.abs(fit.components * signs[:, None] - want.components_).max() <= 1e-4
    assert np.allclose(fit.explained_variance, want.explained_variance_, rtol=1e-4)
    assert np.abs(fit.mean - x.mean(axis=0)).max() <= 1e-4
    assert projected.shape == (300, 5) and fit.rows == 300
    assert np.abs(projected * signs - want.transform(x)).max() <= 1e-3
    assert np.abs(projected - linalg.pca_transform(fit, x)).max() <= 1e-4
    linalg.pca_fit_transform(x[:260], 5)  # the same 512-row bucket: no new compilation
    assert linalg.traces()["pca_one"] - before == 1
    monkeypatch.setattr(linalg, "ROW_CAP", 64)  # past the cap: chunked fit and transform
    chunked, chunked_projected = linalg.pca_fit_transform(x, 5)
    assert np.abs(chunked.components - fit.components).max() <= 1e-4
    assert np.abs(chunked_projected - projected).max() <= 1e-3
    with pytest.raises(ValueError, match="at least 2 rows"):
        linalg.pca_fit_transform(np.ones((1, 4)), 2)


def test_bad_shapes_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"\(3,\)"):
        linalg.cosine_similarity(np.ones(3), np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        linalg.pca_fit(np.ones((1, 4)), 2)
    with pytest.raises(ValueError, match="-1"):
        linalg.bucket(-1)
