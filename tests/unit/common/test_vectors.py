"""`user_content_stats` in both jobs' stages, records already carrying embeddings: the
backfill's change points and the stream's stateful step, each followed by the kernel
stage (`VectorFeatures`), give a row at every change point (a review arriving, a review
leaving a window) with the values of a float64 numpy brute force.

Tolerances: cosine similarity 1e-5, centroid distance 1e-4 (absolute; vectors of norm
up to about 20, float32 kernels), the mean sentiment 1e-12.
"""

from __future__ import annotations

import math
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam import coders
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.test_stream import TestStream as EventStream
from apache_beam.testing.util import assert_that
from apache_beam.transforms.window import TimestampedValue

from common.vectors import EvaluateVectorFeatures
from feature_store.core.columns import EventColumns
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import ChangeRows, RowBatch, candidates
from feature_store.reference import REGISTRY
from offline.features import ComputeChangePoints, KeyForFeatures, ShardChangePoints
from online.stateful import AggregateWindows
from tests.unit.feature_store.core.bruteforce import values_at

US = 1_000_000
DAY = 86_400 * US
PLAN = ViewPlan.build(REGISTRY, "user_content_stats")
TOLERANCE = {
    "max_text_similarity_7d": 1e-5,
    "centroid_distance_30d": 1e-4,
    "avg_sentiment_7d": 1e-12,
}


def _records(seed: int) -> list[dict[str, Any]]:
    """Three users: one review, seven close together, 40 over two months; a null
    embedding and a flagged review (outside the view) among them."""
    rng = np.random.default_rng(seed)
    out = []
    for user, n, spread_days in (("u1", 1, 1), ("u2", 7, 3), ("u3", 40, 60)):
        times = np.sort(rng.integers(DAY, DAY + spread_days * DAY, size=n))
        for i, t in enumerate(times.tolist()):
            vec = (rng.normal(size=384) * rng.uniform(0.5, 20)).astype(np.float32)
            out.append(
                {
                    "event_id": f"{user}-{i:03d}",
                    "event_type": "review_flagged" if (user, i) == ("u3", 5) else "review_created",
                    "event_time": int(t),
                    "user_id": user,
                    "review_id": f"r-{user}-{i}",
                    "sentiment": float(rng.uniform(-1, 1)),
                    "embedding_semantic": None if (user, i) == ("u3", 9) else vec.tolist(),
                    "topic": "review-events",
                }
            )
    return out


def _expected_points(mine: list[dict[str, Any]]) -> list[int]:
    """Every time a value of the definition changes (brute force over the candidates)."""
    events = EventColumns.from_records(mine, PLAN.fields)
    points = []
    for c in candidates(PLAN, events).tolist():
        now, before = values_at(PLAN, mine, c), values_at(PLAN, mine, c - 1)
        if any(not _same(now[k], before[k], TOLERANCE[k] / 10) for k in now):
            points.append(c)
    return points


def _same(a: Any, b: Any, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol


def _check(records: list[dict[str, Any]]) -> Any:
    def check(batches: list[RowBatch]) -> None:
        by_user: dict[str, list[tuple[int, dict[str, float]]]] = {}
        for b in batches:
            assert b.pending is None and b.view == PLAN.view
            for i in range(len(b)):
                row = {k: float(v[i]) for k, v in b.values.items()}
                by_user.setdefault(b.entity_key, []).append((int(b.valid_from[i]), row))
        for user in ("u1", "u2", "u3"):
            mine = [r for r in records if r["user_id"] == user]
            rows = sorted(by_user.get(user, []), key=lambda r: r[0])
            assert [t for t, _ in rows] == _expected_points(mine), user
            for t, row in rows:
                want = values_at(PLAN, mine, t)
                for name, value in want.items():
                    if value is None:
                        assert math.isnan(row[name]), (user, t, name)
                    else:
                        assert abs(row[name] - value) <= TOLERANCE[name], (user, t, name)
        assert set(by_user) == {"u1", "u2", "u3"}

    return check


def test_backfill_stages_give_every_change_point_of_the_definition() -> None:
    records = _records(3)
    with beam.Pipeline() as p:
        rows = (
            p
            | beam.Create([records[::2], records[1::2]])
            | ComputeChangePoints(REGISTRY, [PLAN], shards=2)
            | "ToVectorStage" >> beam.Reshuffle()
            | "VectorFeatures" >> EvaluateVectorFeatures("backfill", max_batch=2)
        )
        assert_that(rows, _check(records))


def test_backfill_stages_per_shard_give_every_change_point_of_the_definition() -> None:
    """The backfill job's wiring: a shard's batches cross the shuffles as one
    `RowBatches`, and the kernel stage evaluates several shards' batches together."""
    records = _records(3)
    with beam.Pipeline() as p:
        shards = (
            p
            | beam.Create([records[::2], records[1::2]])
            | KeyForFeatures(REGISTRY, [PLAN], shards=2)
            | ShardChangePoints([PLAN], per_shard=True)
            | "ToVectorStage" >> beam.Reshuffle()
            | "VectorFeatures" >> EvaluateVectorFeatures("backfill", max_batch=2, per_shard=True)
            | "ToOutputStage" >> beam.Reshuffle()
        )
        assert_that(shards | beam.FlatMap(iter), _check(records))


def test_stream_step_with_expiry_timers_gives_every_change_point_of_the_definition() -> None:
    records = _records(4)
    stream = EventStream()
    for record in sorted(records, key=lambda r: r["event_time"]):
        if record["event_type"] != "review_created":
            continue
        key = (PLAN.view, record["user_id"])
        stream = stream.add_elements([TimestampedValue((key, [record]), record["event_time"] / US)])
    last_s = max(r["event_time"] for r in records) // US + 1
    stream = stream.advance_watermark_to(last_s + 31 * 86_400).advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    p = BeamTestPipeline(options=options)
    out = p | stream | AggregateWindows([PLAN], 0.0, started_us=0)
    rows = out.rows | "VectorFeatures" >> EvaluateVectorFeatures("stream")
    created = [r for r in records if r["event_type"] == "review_created"]
    assert_that(rows, _check(created))
    p.run()
    # the stream's rows are ChangeRows too: what its output is declared as must carry them
    coder = coders.registry.get_coder(rows.element_type)
    sample = ChangeRows(PLAN.view, "u1", ("f",), [(1, (0.5,))])
    assert repr(coder.decode(coder.encode(sample))) == repr(sample)
