"""The batch backfill as one composite transform: its `expand()` is the README's picture.

Archive → count of lines read → validation (dead letters to a file, with the online
rows a store refused) → de-duplication → change points per
(view, entity) → each view's change-point table, and the latest row per entity to the
online stores. Reshuffles separate the stages so that Dataflow Prime gives each the
workers its resource hints ask for (`common.stages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import PBegin

from common.counting import CountElements
from common.stages import IO_HINTS
from common.transforms import DEAD_LETTER, ValidateEvents, write_dead_letter_file
from feature_store.core.plan import ViewPlan
from feature_store.events import DEFAULT_CLOCK_SKEW
from feature_store.registry import Registry
from offline.backfill import WriteOffline
from offline.features import ComputeChangePoints, DeduplicateEvents, latest_row


@dataclass(frozen=True, kw_only=True)
class OnlineOutput:
    """Where the backfill's latest rows go online: RowBatches → rows, the writer, and
    what turns the rows the writer refuses into `DeadLetter`s (none: they are dropped).

    The job's wiring provides them (the batch job never imports the streaming side)."""

    to_rows: beam.PTransform
    sink: beam.PTransform
    rejected: beam.PTransform | None = None


@dataclass(frozen=True, kw_only=True)
class OfflineOutput:
    """The change-point tables the backfill replaces, and how it writes them."""

    tables: dict[str, Any]
    computed_at_us: int
    project: str
    endpoint: str | None
    replace: tuple[Any, Any] | None
    sink: str = "client"


class BackfillFeatures(beam.PTransform):  # type: ignore[misc]
    """The backfill, from an event `reader` to the offline (and optionally online) stores."""

    def __init__(
        self,
        *,
        reader: beam.PTransform,
        registry: Registry,
        plans: Sequence[ViewPlan],
        span_us: tuple[int | None, int],
        dead_letters: str,
        offline: OfflineOutput,
        online: OnlineOutput | None,
        received_us: int | None = None,
        clock_skew_s: float = DEFAULT_CLOCK_SKEW.total_seconds(),
    ) -> None:
        """`received_us`: when messages without a publish time (files, imported rows)
        count as received; event times after it plus `clock_skew_s` are dead letters."""
        super().__init__()
        self.received_us, self.clock_skew_s = received_us, clock_skew_s
        self.reader, self.registry, self.plans = reader, registry, list(plans)
        self.span_us, self.dead_letters = span_us, dead_letters
        self.offline, self.online = offline, online

    def expand(self, begin: PBegin) -> None:
        start_us, as_of_us = self.span_us
        validate = ValidateEvents(
            "backfill",
            self.registry,
            received_us=self.received_us,
            clock_skew_s=self.clock_skew_s,
        )
        checked = (
            begin
            | "ReadArchive" >> self.reader
            | "CountLines"
            >> CountElements("backfill", "lines_read").with_resource_hints(**IO_HINTS)
            | "ValidateEvents" >> validate
        )
        dead_letters = [checked[DEAD_LETTER]]
        rows = (
            checked.valid
            | "Deduplicate" >> DeduplicateEvents()
            | "ToFeatureStage" >> beam.Reshuffle()
            | "EngineerFeatures"
            >> ComputeChangePoints(self.registry, self.plans, start_us, as_of_us)
            | "ToOutputStage" >> beam.Reshuffle()
        )
        out = self.offline
        _ = rows | "WriteOffline" >> WriteOffline(
            self.plans,
            out.tables,
            out.computed_at_us,
            out.project,
            out.endpoint,
            out.replace,
            out.sink,
        )
        if self.online is not None:
            rejected = (
                rows
                | "LatestRows" >> beam.Map(latest_row).with_resource_hints(**IO_HINTS)
                | "ToOnlineRows" >> self.online.to_rows
                | "WriteOnline" >> self.online.sink
            )
            if self.online.rejected is not None:
                dead_letters.append(
                    rejected
                    | "RejectedRows" >> self.online.rejected.with_resource_hints(**IO_HINTS)
                )
        everything = tuple(dead_letters) | "AllDeadLetters" >> beam.Flatten()
        write_dead_letter_file(everything, self.dead_letters)
