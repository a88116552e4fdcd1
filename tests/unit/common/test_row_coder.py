"""`RowBatchCoder`: every column comes back with its name, order, dtype and values, the
numeric ones writable; object and 2-D columns and pending vectors survive; Beam picks
the coder for a PCollection of RowBatches, and a Reshuffle carries it. `RowBatchesCoder`
(a shard's batches as one element): the same for each batch, in order, none sharing
another's memory."""

from __future__ import annotations

import pickle

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from common.row_coder import RowBatchCoder, RowBatches, RowBatchesCoder
from feature_store.core.change_rows import KeyedEvents, compute_rows_many
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch
from feature_store.reference import REGISTRY
from tests.unit.common.test_vectors import _records


def _batch(rows: int) -> RowBatch:
    rng = np.random.default_rng(rows)
    return RowBatch(
        "some_view",
        "entity-é",
        np.arange(rows, dtype=np.int64) * 7 - 3,
        {
            "count": rng.integers(0, 100, size=rows).astype(np.float64),
            "mean": np.where(rng.random(rows) < 0.3, np.nan, rng.random(rows)),
            "last": rng.integers(-(2**62), 2**62, size=rows, dtype=np.int64),
            "flag": rng.random(rows) < 0.5,
            "small": rng.random(rows).astype(np.float32),
            "label": np.array([None if i % 3 == 0 else f"v{i}" for i in range(rows)], object),
            "vector": rng.random((rows, 4)).astype(np.float32),
        },
    )


def _same(left: RowBatch, right: RowBatch) -> None:
    assert (left.view, left.entity_key) == (right.view, right.entity_key)
    assert left.valid_from.dtype == right.valid_from.dtype
    assert left.valid_from.tolist() == right.valid_from.tolist()
    assert list(left.values) == list(right.values)
    for name, column in left.values.items():
        other = right.values[name]
        assert column.dtype == other.dtype and column.shape == other.shape, name
        assert pickle.dumps(column) == pickle.dumps(np.asarray(other)), name


@pytest.mark.parametrize("rows", [0, 1, 5, 1000])
def test_round_trip_keeps_every_column(rows: int) -> None:
    coder = RowBatchCoder()
    batch = _batch(rows)
    back = coder.decode(coder.encode(batch))
    _same(batch, back)
    assert back.pending is None
    back.values["count"][:] = -1.0  # numeric columns are writable (one buffer)
    back.valid_from[:] = 0
    assert rows == 0 or batch.values["count"].min() >= 0  # the original is untouched


def test_pending_vectors_survive() -> None:
    plan = ViewPlan.build(REGISTRY, "user_content_stats")
    records = [r for r in _records(3) if r["event_type"] == "review_created"]
    keyed = KeyedEvents.from_records([(r["user_id"], r) for r in records], plan.fields)
    batches = compute_rows_many(plan, keyed, defer_vectors=True)
    assert batches and all(b.pending is not None for b in batches)
    coder = RowBatchCoder()
    for batch in batches:
        back = coder.decode(coder.encode(batch))
        _same(batch, back)
        assert pickle.dumps(back.pending) == pickle.dumps(batch.pending)


def test_size_estimate_is_near_the_encoding() -> None:
    coder = RowBatchCoder()
    batch = _batch(1000)
    numeric = {k: v for k, v in batch.values.items() if v.dtype != object and v.ndim == 1}
    plain = RowBatch(batch.view, batch.entity_key, batch.valid_from, numeric)
    encoded = len(coder.encode(plain))
    estimated = coder.get_impl().estimate_size(plain)
    assert encoded - 400 <= estimated <= encoded


def test_beam_uses_it_across_a_reshuffle() -> None:
    assert isinstance(beam.coders.registry.get_coder(RowBatch), RowBatchCoder)
    batches = [_batch(n) for n in (0, 3, 40)]
    with BeamTestPipeline() as p:
        rows = (
            p
            | beam.Create([0, 1, 2])
            | beam.Map(lambda i: batches[i]).with_output_types(RowBatch)
            | beam.Reshuffle()
        )
        assert isinstance(beam.coders.registry.get_coder(rows.element_type), RowBatchCoder)
        summary = rows | beam.Map(
            lambda b: (len(b), float(np.nansum(b.values["mean"])), b.values["label"].tolist())
        )
        expected = [
            (len(b), float(np.nansum(b.values["mean"])), b.values["label"].tolist())
            for b in batches
        ]
        assert_that(summary, equal_to(expected))


def _other(rows: int) -> RowBatch:
    """A batch of another view and layout: int32 and bool columns only, no objects."""
    return RowBatch(
        "other_view",
        f"key-{rows}",
        np.arange(rows, dtype=np.int64),
        {"n": np.arange(rows, dtype=np.int32) - 5, "seen": np.arange(rows) % 2 == 0},
    )


def test_many_batches_round_trip_in_order() -> None:
    plan = ViewPlan.build(REGISTRY, "user_content_stats")
    records = [r for r in _records(3) if r["event_type"] == "review_created"]
    keyed = KeyedEvents.from_records([(r["user_id"], r) for r in records], plan.fields)
    pending = compute_rows_many(plan, keyed, defer_vectors=True)
    batches = [_batch(5), _other(3), _batch(0), *pending, _other(0), _batch(1000), _other(7)]
    coder = RowBatchesCoder()
    back = coder.decode(coder.encode(RowBatches(batches)))
    assert len(back) == len(batches)
    for batch, again in zip(batches, back, strict=True):
        _same(batch, again)
        assert pickle.dumps(again.pending) == pickle.dumps(batch.pending)
    first, second = back.batches[0], back.batches[5 + len(pending) - 1]
    first.values["count"][:] = -1.0  # writable, and no batch sees another's change
    assert second.values["count"].min() >= 0 and batches[0].values["count"].min() >= 0
    small, large = back.batches[1], back.batches[-1]  # one layout: cut from one block
    small.values["n"][:] = 99
    small.valid_from[:] = -1
    assert large.values["n"].tolist() == list(range(-5, 2))
    assert large.valid_from.tolist() == list(range(7))


@pytest.mark.parametrize("sizes", [[], [0], [0, 0], [2, 0, 1]])
def test_few_or_empty_batches_round_trip(sizes: list[int]) -> None:
    coder = RowBatchesCoder()
    batches = [_other(n) for n in sizes]
    back = coder.decode(coder.encode(RowBatches(batches)))
    assert len(back) == len(batches)
    for batch, again in zip(batches, back, strict=True):
        _same(batch, again)


def test_beam_carries_row_batches_across_a_reshuffle() -> None:
    assert isinstance(beam.coders.registry.get_coder(RowBatches), RowBatchesCoder)
    shards = [[_batch(2), _other(4)], [_batch(40)], []]
    with BeamTestPipeline() as p:
        rows = (
            p
            | beam.Create([0, 1, 2])
            | beam.Map(lambda i: RowBatches(shards[i])).with_output_types(RowBatches)
            | beam.Reshuffle()
        )
        assert isinstance(beam.coders.registry.get_coder(rows.element_type), RowBatchesCoder)
        summary = rows | beam.Map(lambda s: [(b.view, b.entity_key, len(b)) for b in s])
        expected = [[(b.view, b.entity_key, len(b)) for b in shard] for shard in shards]
        assert_that(summary, equal_to(expected))
