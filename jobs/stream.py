"""The streaming online job: Pub/Sub → validation → raw archive, de-duplication →
exact windows (warm-started from the archive) → online stores. Runs on the DirectRunner
locally and unchanged on Dataflow."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam

from common.counting import CountElements, stream_reconciliation
from feature_store.archive import ARCHIVE
from feature_store.config import PlatformConfig
from feature_store.plan import ViewPlan
from feature_store.registry import Registry
from feature_store.schemas import archive_table_ids
from feature_store.transforms import DEAD_LETTER, KeyByViewEntity, ValidateEvents
from feature_store.windowing import RowBatch
from jobs.backfill import FEATURE_HINTS, IO_HINTS, plans_for
from jobs.runner import make_pipeline
from jobs.watch import wait_for
from online.pubsub_io import PublishPerTopic, ReadEvents
from online.rejected import RejectedToDeadLetters
from online.stateful import LATE, AggregateWindows, DeduplicateByEventId, as_batch

log = logging.getLogger(__name__)
US = 1_000_000


@dataclass(frozen=True)
class StreamSettings:
    allowed_lateness_s: float = 300.0
    dedup_ttl_s: int = 24 * 3600
    views: tuple[str, ...] = ()
    archive: bool = True  # write every valid message to the raw archive
    warm_start: bool = True  # seed the state from the archive before live events


@dataclass
class StreamSummary:
    counters: dict[str, int] = field(default_factory=dict)
    distributions: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped_views: dict[str, str] = field(default_factory=dict)
    ran_s: float = 0.0

    @property
    def reconciliation(self) -> dict[str, Any]:
        """`received = valid + invalid + duplicates`, with late and rejected apart."""
        return stream_reconciliation(self.counters)


def _online_rows(batch: RowBatch, plans: dict[str, ViewPlan]) -> list[Any]:
    from online.from_rows import online_rows

    return online_rows(plans[batch.view], batch)


def _bigquery_endpoint(config: PlatformConfig) -> str | None:
    return config.endpoints.bigquery if config.local else None


def _write_archive(config: PlatformConfig, registry: Registry) -> beam.PTransform:
    from feature_store.schemas import archive_table
    from offline.bigquery_admin import bigquery_schema
    from offline.bigquery_client import cached_client
    from online.archive_sink import WriteArchive

    schemas = {
        s.topic: bigquery_schema(archive_table(s, config.archive_dataset)) for s in registry.sources
    }
    factory = functools.partial(cached_client, config.project, _bigquery_endpoint(config))
    return WriteArchive(factory, archive_table_ids(config, registry), schemas)


def history_horizon_us(plans: Sequence[ViewPlan], started_us: int, lateness_s: float) -> int | None:
    """How far back the warm start reads: the longest window and the lateness, or all
    of the archive when a view has an unbounded feature."""
    if any(f.window is None for p in plans for f in p.features):
        return None
    return started_us - max(p.longest for p in plans) - int(lateness_s * US)


def _history(
    pipeline: beam.Pipeline,
    config: PlatformConfig,
    registry: Registry,
    plans: Sequence[ViewPlan],
    since_us: int | None,
) -> tuple[beam.PCollection, beam.PCollection]:
    """History batches for the windows, and the archived records now invalid."""
    from offline.archive import ReadArchiveTables

    tables = archive_table_ids(config, registry)
    records = (
        pipeline
        | "ReadHistory"
        >> ReadArchiveTables(config.project, _bigquery_endpoint(config), tables, since_us=since_us)
        | "ValidateHistory" >> ValidateEvents("stream", history=True)
    )
    batches = (
        records.valid
        | "KeyHistory" >> beam.ParDo(KeyByViewEntity(registry, plans))
        | "GroupHistory" >> beam.GroupByKey()
        | "HistoryBatches" >> beam.MapTuple(lambda key, recs: (key, list(recs)))
    )
    # An archived record the contract now refuses is a dead letter like a live one.
    return batches, records[DEAD_LETTER]


def build_stream(
    pipeline: beam.Pipeline,
    config: PlatformConfig,
    registry: Registry,
    plans: Sequence[ViewPlan],
    settings: StreamSettings,
    sink: beam.PTransform,
    started_us: int | None = None,
) -> None:
    topics = [s.topic for s in registry.sources]
    prefix = config.topic_prefix
    started_us = started_us or int(datetime.now(UTC).timestamp() * US)
    messages = pipeline | "ReadEvents" >> ReadEvents(
        config.project, topics, prefix
    ).with_resource_hints(**IO_HINTS)
    messages = messages | "CountReceived" >> CountElements("stream", "events_received")
    checked = messages | "ValidateEvents" >> ValidateEvents(
        "stream", registry, archive=settings.archive
    )
    dead_letters = [checked[DEAD_LETTER]]
    if settings.archive:
        _ = checked[ARCHIVE] | "ArchiveEvents" >> _write_archive(config, registry)
    batches = (
        checked.valid
        | "Deduplicate" >> DeduplicateByEventId(settings.dedup_ttl_s)
        | "KeyByViewAndEntity" >> beam.ParDo(KeyByViewEntity(registry, plans))
        | "AsBatches" >> beam.Map(as_batch)
    )
    if settings.warm_start:
        since = history_horizon_us(plans, started_us, settings.allowed_lateness_s)
        history, history_dead = _history(pipeline, config, registry, plans, since)
        batches = (batches, history) | "WithHistory" >> beam.Flatten()
        dead_letters.append(history_dead)
    windows = batches | "EngineerFeatures" >> AggregateWindows(
        plans, settings.allowed_lateness_s, started_us
    ).with_resource_hints(**FEATURE_HINTS)
    _ = windows[LATE] | "LateEvents" >> PublishPerTopic(config.project, topics, "late", prefix)
    # No Reshuffle before the writer: it must see each key's rows in the order the
    # stateful step emitted them. A row that corrects an earlier one (a late-but-allowed
    # event, history arriving after live events) can carry the same valid_from, and
    # newer-wins cannot tell those apart; fused, they are written in order.
    by_view = {p.view: p for p in plans}
    rejected = (
        windows.rows
        | "ToOnlineRows" >> beam.FlatMap(_online_rows, by_view)
        | "WriteOnline" >> sink.with_resource_hints(**IO_HINTS)
    )
    dead_letters.append(
        rejected | "RejectedRows" >> RejectedToDeadLetters({p.view: p.source for p in plans})
    )
    _ = (
        tuple(dead_letters)
        | "AllDeadLetters" >> beam.Flatten()
        | "DeadLetters" >> PublishPerTopic(config.project, topics, "dlq", prefix)
    )


def run_stream(
    config: PlatformConfig,
    registry: Registry,
    settings: StreamSettings,
    *,
    duration_s: float | None = None,
    pipeline_args: Sequence[str] = (),
) -> StreamSummary:
    """Runs until cancelled (Ctrl-C) or for `duration_s`, then reports the job's metrics."""
    from feature_store.metrics import reset_local
    from jobs.online_sink import online_sink

    plans, skipped = plans_for(registry, settings.views or None)
    reset_local()
    pipeline = make_pipeline(pipeline_args, streaming=True)
    build_stream(pipeline, config, registry, plans, settings, online_sink(config))
    begun = time.monotonic()
    result = pipeline.run()
    try:
        wait_for(result, math.inf if duration_s is None else duration_s)
    except KeyboardInterrupt:
        log.info("stopping the streaming job")
    finally:
        summary = collect(result, skipped)
        summary.ran_s = time.monotonic() - begun
        _stop(result)
    return summary


def _stop(result: Any) -> None:
    """Cancel a job still running; one that already ended is left as it is."""
    from apache_beam.runners.runner import PipelineState

    if not PipelineState.is_terminal(result.state):
        result.cancel()


def collect(result: Any, skipped: dict[str, str] | None = None) -> StreamSummary:
    """The job's counters: Beam's, or the in-process tally where it is larger (the local
    runner drops most streaming metric updates, see feature_store.metrics)."""
    from feature_store.metrics import local_counts, local_distributions

    summary = StreamSummary(skipped_views=skipped or {})
    summary.counters.update(local_counts())
    summary.distributions.update(local_distributions())
    metrics = result.metrics().query()
    for counter in metrics["counters"]:
        name = counter.key.metric.name
        value = max(counter.committed or 0, counter.attempted or 0)
        summary.counters[name] = max(summary.counters.get(name, 0), int(value))
    for dist in metrics["distributions"]:
        value = dist.attempted if dist.attempted is not None else dist.committed
        name = dist.key.metric.name
        if value is not None and value.count and name not in summary.distributions:
            summary.distributions[name] = {
                "count": value.count,
                "mean": round(value.mean, 1),
                "min": value.min,
                "max": value.max,
            }
    return summary
