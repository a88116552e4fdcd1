"""The declared projection `embedding_semantic_pca32`: fitted by the batch job's stage on
its stated sample, saved with a version, applied by both jobs' stages with the same
matrix. Expected values come from float64 numpy: the sample is drawn here from its
statement, its PCA by `numpy.linalg.eigh`, the projection by `(x - mean) @ components.T`.

Tolerances: components within 1e-4 of numpy's up to sign (float32 kernels), projected
values within 1e-3 absolute for inputs of norm about 10.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from common.projections import (
    ApplyProjections,
    FitProjections,
    ProjectionStore,
    used_projections,
)
from feature_store.config import PlatformConfig
from feature_store.core.plan import ViewPlan
from feature_store.definitions import DerivedField, DType
from feature_store.errors import FeatureDefinitionError
from feature_store.feast_repo import feast_objects
from feature_store.reference import REGISTRY

FIELD = next(d for _, d in REGISTRY.derived if d.name == "embedding_semantic_pca32")
FIELDS = {FIELD.name: FIELD}
ROWS = 60


def _records(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(40, 384))  # a low-rank cloud: a few strong directions
    out = []
    for i in range(n):
        vec = (rng.normal(size=40) * np.linspace(3, 0.1, 40)) @ basis / 5
        out.append(
            {
                "event_id": f"ev-{seed}-{i}",
                "topic": "review-events",
                "embedding_semantic": None if i % 17 == 3 else vec.astype(np.float32).tolist(),
            }
        )
    return out


def _numpy_projection(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The stated sample (smallest sha256('0:' + event_id) among records with an
    embedding) and its float64 PCA: (mean, components)."""
    have = [r for r in records if r["embedding_semantic"] is not None]
    have.sort(key=lambda r: hashlib.sha256(f"0:{r['event_id']}".encode()).hexdigest())
    x = np.array([r["embedding_semantic"] for r in have[:ROWS]], dtype=np.float64)
    mean = x.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    return mean, vectors[:, ::-1][:, :32].T


def _written(out: beam.PCollection, prefix: Path) -> None:
    _ = out | "Json" >> beam.Map(json.dumps) | "Write" >> beam.io.WriteToText(str(prefix))


def _read(prefix: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in prefix.parent.glob(f"{prefix.name}*") for line in f.open()]


def _run_backfill_stage(
    records: list[dict[str, Any]], root: Path, *, refit: bool = False
) -> list[dict[str, Any]]:
    with beam.Pipeline() as p:
        batches = p | beam.Create([records[:50], records[50:]])
        fitted = batches | "FitProjections" >> FitProjections(
            FIELDS, str(root), rows=ROWS, refit=refit
        )
        out = batches | "ApplyProjections" >> ApplyProjections(FIELDS, str(root), fitted)
        _written(out | beam.FlatMap(lambda rs: rs), root / "out" / "batch")
    return _read(root / "out" / "batch")


def test_the_batch_job_fits_on_the_stated_sample_saves_and_applies(tmp_path: Path) -> None:
    records = _records(200, seed=1)
    got = {r["event_id"]: r for r in _run_backfill_stage(records, tmp_path)}
    saved = ProjectionStore(str(tmp_path)).latest(FIELD.name)
    assert saved is not None and saved.dim == 32 and saved.sample.rows == ROWS
    assert (tmp_path / "projections" / f"{FIELD.name}-{saved.version}.npz").exists()
    mean, components = _numpy_projection(records)
    assert np.abs(saved.fit.mean - mean).max() < 1e-4
    for mine, want in zip(saved.fit.components[:8], components[:8], strict=True):
        assert min(np.abs(mine - want).max(), np.abs(mine + want).max()) < 1e-4
    for record in records:
        projected = got[record["event_id"]][FIELD.name]
        if record["embedding_semantic"] is None:
            assert projected is None
            continue
        x = np.asarray(record["embedding_semantic"], dtype=np.float64)
        expected = (x - saved.fit.mean) @ saved.fit.components.astype(np.float64).T
        assert np.abs(np.asarray(projected) - expected).max() < 1e-3


def test_the_stream_applies_the_latest_saved_matrix_like_the_batch_job(tmp_path: Path) -> None:
    records = _records(120, seed=2)
    batch = {r["event_id"]: r[FIELD.name] for r in _run_backfill_stage(records, tmp_path)}
    with beam.Pipeline() as p:
        out = p | beam.Create(records[:30]) | ApplyProjections(FIELDS, str(tmp_path))
        _written(out, tmp_path / "out" / "stream")
    streamed = _read(tmp_path / "out" / "stream")
    assert len(streamed) == 30
    for record in streamed:
        want = batch[record["event_id"]]
        if want is None:
            assert record[FIELD.name] is None
        else:
            assert np.array_equal(np.asarray(record[FIELD.name]), np.asarray(want))


def test_a_refit_on_the_same_sample_has_the_same_version(tmp_path: Path) -> None:
    records = _records(100, seed=3)
    _run_backfill_stage(records, tmp_path / "a")
    _run_backfill_stage(list(reversed(records)), tmp_path / "b")
    a = ProjectionStore(str(tmp_path / "a")).latest(FIELD.name)
    b = ProjectionStore(str(tmp_path / "b")).latest(FIELD.name)
    assert a is not None and b is not None and a.version == b.version


def test_a_later_backfill_keeps_the_saved_projection_unless_told_to_refit(
    tmp_path: Path,
) -> None:
    """The nightly backfill sees more events than the first (the live ones too): it keeps
    the version the stream applies, so online and offline values stay comparable."""
    _run_backfill_stage(_records(100, seed=5), tmp_path)
    first = ProjectionStore(str(tmp_path)).latest(FIELD.name)
    other = _records(150, seed=6)
    kept = {r["event_id"]: r[FIELD.name] for r in _run_backfill_stage(other, tmp_path)}
    assert first is not None
    assert ProjectionStore(str(tmp_path)).latest(FIELD.name).version == first.version
    for record in other:
        if record["embedding_semantic"] is not None:
            want = first.transform(np.asarray([record["embedding_semantic"]], dtype=np.float32))
            np.testing.assert_allclose(kept[record["event_id"]], want[0], atol=1e-5)
    _run_backfill_stage(other, tmp_path, refit=True)
    refit = ProjectionStore(str(tmp_path)).latest(FIELD.name)
    assert refit is not None and refit.version != first.version


def test_without_a_saved_projection_the_stream_leaves_the_field_null(tmp_path: Path) -> None:
    with beam.Pipeline() as p:
        out = p | beam.Create(_records(3, seed=4)) | ApplyProjections(FIELDS, str(tmp_path))
        assert_that(out | beam.Map(lambda r: r[FIELD.name]), equal_to([None] * 3))


def test_declared_projection_is_a_review_content_feature_in_feast() -> None:
    plan = ViewPlan.build(REGISTRY, "review_content")
    assert set(used_projections(REGISTRY, [plan])) == {FIELD.name}
    assert "semantic" in plan.models  # through the projection's input
    view = next(
        o
        for o in feast_objects(REGISTRY, PlatformConfig.local_default())
        if getattr(o, "name", None) == "review_content" and hasattr(o, "schema")
    )
    assert FIELD.name in {f.name for f in view.schema}


@pytest.mark.parametrize(
    ("producer", "dim", "named"),
    [("pca:embedding_semantic:0", 0, "producer"), ("pca:other:8", 8, "input")],
)
def test_bad_projection_declarations_name_the_value(producer: str, dim: int, named: str) -> None:
    with pytest.raises(FeatureDefinitionError, match=named):
        DerivedField(
            name="bad",
            dtype=DType.FLOAT32_VECTOR,
            input="embedding_semantic",
            producer=producer,
            dim=dim or None,
        )
