"""`feature-store import`: existing event files into the raw archive, validated (invalid
lines to a dead-letter file) and de-duplicated by event_id, so that the backfill and the
stream's warm start see one history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import apache_beam as beam

from common.archive_read import discover
from common.stages import expand_at_top_level
from feature_store.config import PlatformConfig
from feature_store.events import to_micros
from feature_store.registry import Registry
from jobs.runner import make_pipeline


@dataclass
class ImportSummary:
    counters: dict[str, int] = field(default_factory=dict)
    dead_letters: str | None = None


def wire_import(
    pipeline: beam.Pipeline,
    config: PlatformConfig,
    registry: Registry,
    paths: Sequence[str],
    dead_path: str,
    received: datetime | None = None,
) -> None:
    """The import job (`offline.importer.ImportEvents`) on `pipeline`, its stages at the
    top level."""
    from offline.importer import ImportEvents

    job = ImportEvents(
        registry,
        discover(paths, [s.topic for s in registry.sources]),
        dead_letters=dead_path,
        received_us=to_micros(received or datetime.now(UTC)),
        clock_skew_s=config.clock_skew_s,
        project=config.project,
        dataset=config.archive_dataset,
        endpoint=config.bigquery_endpoint,
    )
    expand_at_top_level(pipeline, job)


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
    dead_path = dead_letters or str(
        config.state_dir / "dead_letters" / f"import-{uuid.uuid4().hex[:12]}"
    )
    pipeline = make_pipeline(pipeline_args)
    wire_import(pipeline, config, registry, paths, dead_path, received)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: int(c.committed or 0) for c in result.metrics().query()["counters"]
    }
    return ImportSummary(
        counters=counters, dead_letters=dead_path if counters.get("events_invalid") else None
    )
