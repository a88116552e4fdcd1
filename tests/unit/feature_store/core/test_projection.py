"""The PCA projection artefact: versioned, saved, loaded, applied the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from feature_store.core import projection
from feature_store.errors import FeatureDefinitionError


def _sample_vectors(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rows, 48)) @ rng.normal(size=(48, 48))).astype(np.float32)


def _fit(vectors: np.ndarray, seed: int) -> projection.Projection:
    sample = projection.Sample(source="review_content.embedding_semantic", rows=200, seed=seed)
    return projection.fit_projection(
        vectors,
        name="embedding_semantic_pca8",
        input_feature="embedding_semantic",
        dim=8,
        sample=sample,
    )


def test_saved_projection_loads_with_its_version_and_transforms_the_same(tmp_path: Path) -> None:
    vectors = _sample_vectors(200, 1)
    fitted = _fit(vectors, 1)
    path = fitted.save(tmp_path)
    assert path.name == f"embedding_semantic_pca8-{fitted.version}.npz"
    loaded = projection.load(path)
    assert loaded.version == fitted.version and loaded.dim == 8
    new = _sample_vectors(30, 9)
    expected = (new - vectors.mean(axis=0)) @ loaded.fit.components.T.astype(np.float64)
    assert np.abs(loaded.transform(new) - expected).max() <= 1e-3
    assert np.array_equal(loaded.transform(new), fitted.transform(new))


def test_version_follows_the_matrix_and_the_sample() -> None:
    vectors = _sample_vectors(200, 1)
    assert _fit(vectors, 1).version == _fit(vectors, 1).version
    assert _fit(vectors, 1).version != _fit(vectors, 2).version  # same rows, other statement
    assert _fit(vectors, 1).version != _fit(_sample_vectors(200, 3), 1).version


def test_a_tampered_file_is_refused(tmp_path: Path) -> None:
    fitted = _fit(_sample_vectors(200, 1), 1)
    path = fitted.save(tmp_path)
    with np.load(path) as data:
        arrays = dict(data)
    arrays["components"] = arrays["components"] * 2
    with path.open("wb") as out:
        np.savez(out, **arrays)
    with pytest.raises(FeatureDefinitionError, match=fitted.version):
        projection.load(path)


def test_the_sample_must_have_the_stated_rows() -> None:
    with pytest.raises(FeatureDefinitionError, match="200 rows"):
        _fit(_sample_vectors(150, 1), 1)
