"""The batch feature stage in Beam: de-duplication, sharded grouping, rows per entity."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that

from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch, compute_rows
from feature_store.reference import REGISTRY
from jobs.backfill import TWO_WORKERS
from offline.features import ComputeChangePoints, DeduplicateEvents, shard_of

HOUR = 3_600_000_000
PLANS = [ViewPlan.build(REGISTRY, v) for v in ("user_review_stats", "business_review_stats")]


def review(
    i: int, user: str, business: str, hour: int, rating: int, event_type: str = "review_created"
) -> dict[str, Any]:
    return {
        "topic": "review-events",
        "event_id": f"ev-{i}",
        "event_type": event_type,
        "event_time": hour * HOUR,
        "review_id": f"rv-{i}",
        "user_id": user,
        "business_id": business,
        "rating": rating,
        "text": "fine",
        "language": "en",
        "ip_hash": None,
        "device_id": f"dev-{user}",
        "reason": None,
    }


def events() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what arrives, what de-duplication must keep)."""
    unique = [
        review(i, f"u{i % 4}", f"b{i % 3}", hour=i * 5 % 37, rating=1 + i % 5) for i in range(30)
    ]
    unique.append(review(30, "u1", "b2", hour=3, rating=2, event_type="review_flagged"))
    again = [dict(unique[i]) for i in (0, 5, 5, 17)]  # exact re-deliveries
    later = {**unique[9], "event_time": unique[9]["event_time"] + HOUR, "rating": 1}
    earlier = {**unique[12], "event_time": unique[12]["event_time"] - HOUR, "rating": 5}
    kept = [earlier if e is unique[12] else e for e in unique]  # first by time wins
    return unique + again + [later, earlier], kept


def expected_rows(kept: list[dict[str, Any]]) -> dict[tuple[str, str], RowBatch]:
    out = {}
    for plan in PLANS:
        for key in {e[plan.join_key] for e in kept}:
            mine = [
                e
                for e in kept
                if e[plan.join_key] == key
                and (plan.where is None or e.get(plan.where.field) in plan.where.values)
            ]
            batch = compute_rows(plan, key, mine)
            if len(batch):
                out[(plan.view, key)] = batch
    return out


def check(expected: dict[tuple[str, str], RowBatch]) -> Any:
    def compare(batches: list[RowBatch]) -> None:
        got = {(b.view, b.entity_key): b for b in batches}
        assert sorted(got) == sorted(expected)
        for name, want in expected.items():
            assert got[name].valid_from.tolist() == want.valid_from.tolist(), name
            for feature, values in want.values.items():
                assert np.array_equal(got[name].values[feature], values, equal_nan=True)

    return compare


def test_deduplicated_sharded_rows_equal_the_core_per_entity() -> None:
    arrived, kept = events()
    with BeamTestPipeline(runner=FnApiRunner()) as pipeline:
        rows = (
            pipeline
            | beam.Create(arrived)
            | DeduplicateEvents(shards=4, batch_size=7)
            | beam.Reshuffle()
            | ComputeChangePoints(REGISTRY, PLANS, shards=3)
        )
        assert_that(rows, check(expected_rows(kept)))


def test_deduplicated_batches_hold_each_event_once() -> None:
    arrived, kept = events()
    with BeamTestPipeline(runner=FnApiRunner()) as pipeline:
        batches = pipeline | beam.Create(arrived) | DeduplicateEvents(shards=4, batch_size=7)

        def one_each(found: list[list[dict[str, Any]]]) -> None:
            records = [r for batch in found for r in batch]
            assert all(len(batch) <= 7 for batch in found)
            assert sorted(records, key=lambda r: r["event_id"]) == sorted(
                kept, key=lambda r: r["event_id"]
            )

        assert_that(batches, one_each)


def test_shards_are_stable_and_in_range() -> None:
    assert shard_of("u000123", 128) == shard_of("u000123", 128)
    assert {shard_of(f"u{i}", 8) for i in range(200)} == set(range(8))


def test_two_worker_processes_give_every_row_and_count_it() -> None:
    """The local runner with two SDK worker processes (the bench's 2-worker row): each
    worker holds its bundle's shards until the bundle ends; the rows that come out are
    the core's, and the `change_points` counter, summed over both workers, counts them."""
    arrived, kept = events()
    expected = expected_rows(kept)
    options = PipelineOptions(list(TWO_WORKERS))
    pipeline = beam.Pipeline(runner=FnApiRunner(), options=options)
    rows = (
        pipeline
        | beam.Create(arrived, reshuffle=False)
        | DeduplicateEvents(shards=4, batch_size=7)
        | beam.Reshuffle()
        | ComputeChangePoints(REGISTRY, PLANS, shards=3)
    )
    assert_that(rows, check(expected))
    result = pipeline.run()
    result.wait_until_finish()
    counted = sum(
        c.committed
        for c in result.metrics().query()["counters"]
        if c.key.metric.name == "change_points"
    )
    assert counted == sum(len(batch) for batch in expected.values())
