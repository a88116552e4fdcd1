"""The stream's archive writer: rows batched per topic before each insert call, every
row inserted once, no call above the batch size."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as EventStream
from apache_beam.transforms.window import TimestampedValue

from common.archive_write import WriteArchive
from jobs.local_runner import LocalStreamingRunner

CALLS: list[tuple[str, list[str]]] = []
TABLES = {"review-events": "p.d.reviews", "user-events": "p.d.users"}


class _Client:
    """Records each insert call: the table and the rows' ids."""

    def insert_rows(self, table: str, rows: list[dict[str, Any]], **_: Any) -> list[Any]:
        CALLS.append((table, [r["event_id"] for r in rows]))
        return []


def _rows(topic: str, first: int, n: int) -> list[Any]:
    return [
        TimestampedValue((topic, {"event_id": f"{topic}-{i}"}), i) for i in range(first, first + n)
    ]


def test_rows_are_batched_per_topic_and_inserted_once() -> None:
    CALLS.clear()
    stream = EventStream()
    for step in range(6):  # bundles of 210 review rows and 3 user rows
        stream = stream.add_elements(_rows("review-events", 210 * step, 210))
        stream = stream.add_elements(_rows("user-events", 3 * step, 3))
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    schemas = {topic: [] for topic in TABLES}
    with beam.Pipeline(runner=LocalStreamingRunner(), options=options) as p:
        _ = p | stream | WriteArchive(_Client, TABLES, schemas, batch_size=500)
    reviews = [ids for table, ids in CALLS if table == TABLES["review-events"]]
    users = [ids for table, ids in CALLS if table == TABLES["user-events"]]
    assert sorted(i for ids in reviews for i in ids) == sorted(
        f"review-events-{i}" for i in range(1260)
    )
    assert sorted(i for ids in users for i in ids) == sorted(f"user-events-{i}" for i in range(18))
    assert all(len(ids) <= 500 for ids in reviews + users)
    assert len(reviews) < 6 and len(users) < 6  # fewer calls than the bundles that came


@pytest.mark.parametrize(("batch_size", "buffering_s"), [(0, 1.0), (500, 0.0), (500, 61.0)])
def test_batches_need_a_size_and_a_bounded_wait(batch_size: int, buffering_s: float) -> None:
    with pytest.raises(ValueError, match="archive batches need"):
        WriteArchive(_Client, TABLES, {}, batch_size=batch_size, max_buffering_s=buffering_s)
