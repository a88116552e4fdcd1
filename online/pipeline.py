"""The streaming job as one composite transform: its `expand()` is the README's picture.

Pub/Sub → count of messages received → validation (dead letters to `<topic>-dlq`, with
archived records now invalid and online rows a store refused) → raw archive; de-duplication →
keying by (view, entity) → exact windows, warm-started from the archive (late events to
`<topic>-late`) → online stores. Each stage owns its resource hints (`common.stages`), so
a new stage (inference, a kernel) is one line here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.pvalue import PBegin, PCollection

from common.archive import ARCHIVE
from common.counting import CountElements
from common.stages import DEDUP_HINTS, HISTORY_HINTS, IO_HINTS, VALIDATION_HINTS
from common.transforms import DEAD_LETTER, KeyByViewEntity, ValidateEvents
from feature_store.config import PlatformConfig
from feature_store.core.plan import ViewPlan
from feature_store.registry import Registry
from feature_store.schemas import archive_table, archive_table_ids
from online.from_rows import to_online_rows
from online.pubsub_io import PublishPerTopic, ReadEvents
from online.rejected import RejectedToDeadLetters
from online.stateful import LATE, AggregateWindows, DeduplicateByEventId, as_batch

US = 1_000_000


@dataclass(frozen=True)
class StreamSettings:
    allowed_lateness_s: float = 300.0
    dedup_ttl_s: int = 24 * 3600
    views: tuple[str, ...] = ()
    archive: bool = True  # write every valid message to the raw archive
    warm_start: bool = True  # seed the state from the archive before live events


def history_horizon_us(plans: Sequence[ViewPlan], started_us: int, lateness_s: float) -> int | None:
    """How far back the warm start reads: the longest window and the lateness, or all
    of the archive when a view has an unbounded feature."""
    if any(f.window is None for p in plans for f in p.features):
        return None
    return started_us - max(p.longest for p in plans) - int(lateness_s * US)


class StreamFeatures(beam.PTransform):  # type: ignore[misc]
    """The streaming job, from Pub/Sub to the online `sink` (given by the job's wiring)."""

    def __init__(
        self,
        *,
        config: PlatformConfig,
        registry: Registry,
        plans: Sequence[ViewPlan],
        settings: StreamSettings,
        sink: beam.PTransform,
        started_us: int,
    ) -> None:
        super().__init__()
        self.config, self.registry, self.plans = config, registry, list(plans)
        self.settings, self.sink, self.started_us = settings, sink, started_us
        self.topics = [s.topic for s in registry.sources]

    def expand(self, begin: PBegin) -> None:
        config, settings, prefix = self.config, self.settings, self.config.topic_prefix
        checked = (
            begin
            | "ReadEvents" >> ReadEvents(config.project, self.topics, prefix)
            | "CountReceived"
            >> CountElements("stream", "events_received").with_resource_hints(**IO_HINTS)
            | "ValidateEvents"
            >> ValidateEvents(
                "stream",
                self.registry,
                archive=settings.archive,
                clock_skew_s=config.clock_skew_s,
            )
        )
        dead_letters = [checked[DEAD_LETTER]]
        if settings.archive:
            _ = checked[ARCHIVE] | "ArchiveEvents" >> self._write_archive()
        batches = (
            checked.valid
            | "Deduplicate" >> DeduplicateByEventId(settings.dedup_ttl_s)
            # keyed and batched on the de-duplication stage's workers
            | "KeyByViewAndEntity"
            >> beam.ParDo(KeyByViewEntity(self.registry, self.plans)).with_resource_hints(
                **DEDUP_HINTS
            )
            | "AsBatches" >> beam.Map(as_batch).with_resource_hints(**DEDUP_HINTS)
        )
        if settings.warm_start:
            history, history_dead = self._history(begin)
            batches = (batches, history) | "WithHistory" >> beam.Flatten()
            dead_letters.append(history_dead)
        windows = batches | "EngineerFeatures" >> AggregateWindows(
            self.plans, settings.allowed_lateness_s, self.started_us
        )
        _ = windows[LATE] | "LateEvents" >> PublishPerTopic(
            config.project, self.topics, "late", prefix
        )
        # No Reshuffle before the writer: it must see each key's rows in the order the
        # stateful step emitted them. A row that corrects an earlier one (a late-but-allowed
        # event, history arriving after live events) can carry the same valid_from, and
        # newer-wins cannot tell those apart; fused, they are written in order.
        rejected = (
            windows.rows | "ToOnlineRows" >> to_online_rows(self.plans) | "WriteOnline" >> self.sink
        )
        dead_letters.append(
            rejected
            | "RejectedRows"
            >> RejectedToDeadLetters({p.view: p.source for p in self.plans}).with_resource_hints(
                **IO_HINTS
            )
        )
        _ = (
            tuple(dead_letters)
            | "AllDeadLetters" >> beam.Flatten()
            | "DeadLetters" >> PublishPerTopic(config.project, self.topics, "dlq", prefix)
        )

    def _write_archive(self) -> beam.PTransform:
        from common.archive_write import WriteArchive
        from common.bigquery_admin import bigquery_schema
        from common.bigquery_client import cached_client

        config = self.config
        schemas = {
            s.topic: bigquery_schema(archive_table(s, config.archive_dataset))
            for s in self.registry.sources
        }
        factory = functools.partial(cached_client, config.project, config.bigquery_endpoint)
        return WriteArchive(factory, archive_table_ids(config, self.registry), schemas)

    def _history(self, begin: PBegin) -> tuple[PCollection, PCollection]:
        """The archive's events since the horizon, grouped per (view, entity), and the
        archived records the contract now refuses (dead letters like live ones)."""
        from common.archive_read import ReadArchiveTables

        config, settings = self.config, self.settings
        since = history_horizon_us(self.plans, self.started_us, settings.allowed_lateness_s)
        tables = archive_table_ids(config, self.registry)
        records = (
            begin
            | "ReadHistory"
            >> ReadArchiveTables(config.project, config.bigquery_endpoint, tables, since_us=since)
            | "ValidateHistory"
            >> ValidateEvents(
                "stream", self.registry, history=True, clock_skew_s=config.clock_skew_s
            )
        )
        history: PCollection = (
            records.valid
            | "KeyHistory"
            >> beam.ParDo(KeyByViewEntity(self.registry, self.plans)).with_resource_hints(
                **VALIDATION_HINTS
            )
            | "GroupHistory" >> beam.GroupByKey()
            # each key's whole history in memory at once
            | "HistoryBatches"
            >> beam.MapTuple(lambda key, recs: (key, list(recs))).with_resource_hints(
                **HISTORY_HINTS
            )
        )
        return history, records[DEAD_LETTER]
