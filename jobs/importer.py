"""`feature-store import`: existing event files into the raw archive, validated (invalid
lines to a dead-letter file) and de-duplicated by event_id, so that the backfill and the
stream's warm start see one history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam

from common.archive import ARCHIVE
from common.archive_read import ReadEventFiles, discover
from common.transforms import DEAD_LETTER, ValidateEvents, write_dead_letter_file
from feature_store.config import PlatformConfig
from feature_store.events import to_micros
from feature_store.registry import Registry
from feature_store.schemas import archive_table
from jobs.runner import make_pipeline


@dataclass
class ImportSummary:
    counters: dict[str, int] = field(default_factory=dict)
    dead_letters: str | None = None


def _first(rows: Any) -> Any:
    return min(rows, key=lambda r: r["payload"])


def run_import(
    config: PlatformConfig,
    registry: Registry,
    paths: Sequence[str],
    *,
    dead_letters: str | None = None,
    pipeline_args: Sequence[str] = (),
    received: datetime | None = None,
) -> ImportSummary:
    """`received`: when the files count as received (their events' event_time may not be
    later, plus the clock skew); default: when the run starts."""
    from common.bigquery_admin import bigquery_schema
    from offline.bigquery_sink import WriteToBigQueryClient

    files = discover(paths, [s.topic for s in registry.sources])
    dead_path = dead_letters or str(
        config.state_dir / "dead_letters" / f"import-{uuid.uuid4().hex[:12]}"
    )
    pipeline = make_pipeline(pipeline_args)
    messages = pipeline | "ReadFiles" >> ReadEventFiles(files)
    received_us = to_micros(received or datetime.now(UTC))
    checked = messages | "ValidateEvents" >> ValidateEvents(
        "import",
        registry,
        archive=True,
        received_us=received_us,
        clock_skew_s=config.clock_skew_s,
    )
    write_dead_letter_file(checked[DEAD_LETTER], dead_path)
    unique = (
        checked[ARCHIVE]
        | "KeyByEventId" >> beam.Map(lambda tr: ((tr[0], tr[1]["event_id"]), tr[1]))
        | "OnePerEventId" >> beam.CombinePerKey(_first)
    )
    for source in registry.sources:
        spec = archive_table(source, config.archive_dataset)
        table = f"{config.project}.{spec.dataset}.{spec.name}"
        _ = (
            unique
            | f"Only {source.topic}" >> beam.Filter(lambda kv, t=source.topic: kv[0][0] == t)
            | f"Rows {source.topic}" >> beam.Map(lambda kv: kv[1])
            | f"Batch {source.topic}"
            >> beam.BatchElements(min_batch_size=10_000, max_batch_size=100_000)
            | f"Append {source.topic}"
            >> WriteToBigQueryClient(
                table,
                bigquery_schema(spec),
                project=config.project,
                endpoint=config.bigquery_endpoint,
            )
        )
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: int(c.committed or 0) for c in result.metrics().query()["counters"]
    }
    return ImportSummary(
        counters=counters, dead_letters=dead_path if counters.get("events_invalid") else None
    )
