"""The streaming online job: Pub/Sub → validation → de-duplication → exact windows →
online stores. Runs on the DirectRunner locally and unchanged on Dataflow."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam

from feature_store.config import PlatformConfig
from feature_store.plan import ViewPlan
from feature_store.registry import Registry
from feature_store.transforms import DEAD_LETTER, ValidateEvents
from feature_store.windowing import RowBatch
from jobs.backfill import FEATURE_HINTS, IO_HINTS, plans_for
from jobs.runner import make_pipeline
from online.pubsub_io import PublishPerTopic, ReadEvents
from online.stateful import LATE, AggregateWindows, DeduplicateByEventId

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSettings:
    allowed_lateness_s: float = 300.0
    dedup_ttl_s: int = 24 * 3600
    views: tuple[str, ...] = ()


@dataclass
class StreamSummary:
    counters: dict[str, int] = field(default_factory=dict)
    distributions: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped_views: dict[str, str] = field(default_factory=dict)
    ran_s: float = 0.0


def _online_rows(batch: RowBatch, plans: dict[str, ViewPlan]) -> list[Any]:
    from online.from_rows import online_rows

    return online_rows(plans[batch.view], batch)


def build_stream(pipeline: beam.Pipeline, config: PlatformConfig, registry: Registry,
                 plans: Sequence[ViewPlan], settings: StreamSettings, sink: beam.PTransform
                 ) -> None:
    topics = [s.topic for s in registry.sources]
    prefix = config.topic_prefix
    messages = pipeline | "ReadEvents" >> ReadEvents(
        config.project, topics, prefix).with_resource_hints(**IO_HINTS)
    checked = messages | "ValidateEvents" >> ValidateEvents("stream")
    _ = checked[DEAD_LETTER] | "DeadLetters" >> PublishPerTopic(config.project, topics, "dlq", prefix)
    windows = (checked.valid
               | "Deduplicate" >> DeduplicateByEventId(settings.dedup_ttl_s)
               | "EngineerFeatures" >> AggregateWindows(
                   registry, plans, settings.allowed_lateness_s).with_resource_hints(
                       **FEATURE_HINTS))
    _ = windows[LATE] | "LateEvents" >> PublishPerTopic(config.project, topics, "late", prefix)
    by_view = {p.view: p for p in plans}
    _ = (windows.rows
         | "ToOutputStage" >> beam.Reshuffle()
         | "ToOnlineRows" >> beam.FlatMap(_online_rows, by_view)
         | "WriteOnline" >> sink.with_resource_hints(**IO_HINTS))


def run_stream(config: PlatformConfig, registry: Registry, settings: StreamSettings, *,
               duration_s: float | None = None, pipeline_args: Sequence[str] = ()) -> StreamSummary:
    """Runs until cancelled (Ctrl-C) or for `duration_s`, then reports the job's metrics."""
    from jobs.online_sink import online_sink

    plans, skipped = plans_for(registry, settings.views or None)
    pipeline = make_pipeline(pipeline_args, streaming=True)
    build_stream(pipeline, config, registry, plans, settings, online_sink(config))
    begun = time.monotonic()
    result = pipeline.run()
    try:
        if duration_s is None:
            result.wait_until_finish()
        else:
            time.sleep(duration_s)
    except KeyboardInterrupt:
        log.info("stopping the streaming job")
    finally:
        summary = collect(result, skipped)
        summary.ran_s = time.monotonic() - begun
        result.cancel()
    return summary


def collect(result: Any, skipped: dict[str, str] | None = None) -> StreamSummary:
    summary = StreamSummary(skipped_views=skipped or {})
    metrics = result.metrics().query()
    # The DirectRunner commits streaming metrics late; attempted values are current there.
    for counter in metrics["counters"]:
        name = counter.key.metric.name
        value = max(counter.committed or 0, counter.attempted or 0)
        summary.counters[name] = summary.counters.get(name, 0) + int(value)
    for dist in metrics["distributions"]:
        value = dist.attempted if dist.attempted is not None else dist.committed
        if value is not None and value.count:
            summary.distributions[dist.key.metric.name] = {
                "count": value.count, "mean": round(value.mean, 1), "min": value.min,
                "max": value.max}
    return summary
