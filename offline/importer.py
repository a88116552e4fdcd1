"""The import job as one composite transform: its `expand()` is the job's picture.

Event files → validation (invalid lines to a dead-letter file) → one copy per
(topic, event_id), the first by payload → each source's raw archive table, in batches
through the BigQuery client. The backfill and the stream's warm start then read one
history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import PBegin

from common.archive import ARCHIVE
from common.archive_read import ArchiveFile, ReadEventFiles
from common.beam_types import PColl, Transform
from common.transforms import DEAD_LETTER, ValidateEvents, write_dead_letter_file
from feature_store.registry import Registry
from feature_store.schemas import TableSpec, archive_table
from offline.bigquery_sink import WriteToBigQueryClient


def _first(rows: Any) -> Any:
    return min(rows, key=lambda r: r["payload"])


class ImportEvents(Transform):
    """Event `files` into the archive dataset `dataset` of `project`."""

    def __init__(
        self,
        registry: Registry,
        files: Sequence[ArchiveFile],
        *,
        dead_letters: str,
        received_us: int,
        clock_skew_s: float,
        project: str,
        dataset: str,
        endpoint: str | None,
    ) -> None:
        super().__init__()
        self.registry, self.files, self.dead_letters = registry, list(files), dead_letters
        self.received_us, self.clock_skew_s = received_us, clock_skew_s
        self.project, self.dataset, self.endpoint = project, dataset, endpoint

    def expand(self, begin: PBegin) -> None:
        messages = begin | "ReadFiles" >> ReadEventFiles(self.files)
        checked = messages | "ValidateEvents" >> ValidateEvents(
            "import",
            self.registry,
            archive=True,
            received_us=self.received_us,
            clock_skew_s=self.clock_skew_s,
        )
        write_dead_letter_file(checked[DEAD_LETTER], self.dead_letters)
        unique = (
            checked[ARCHIVE]
            | "KeyByEventId" >> beam.Map(lambda tr: ((tr[0], tr[1]["event_id"]), tr[1]))
            | "OnePerEventId" >> beam.CombinePerKey(_first)
        )
        for source in self.registry.sources:
            self._append(unique, source.topic, archive_table(source, self.dataset))

    def _append(self, unique: PColl, topic: str, spec: TableSpec) -> None:
        from common.bigquery_admin import bigquery_schema

        _ = (
            unique
            | f"Only {topic}" >> beam.Filter(lambda kv, t=topic: kv[0][0] == t)
            | f"Rows {topic}" >> beam.Map(lambda kv: kv[1])
            | f"Batch {topic}" >> beam.BatchElements(min_batch_size=10_000, max_batch_size=100_000)
            | f"Append {topic}"
            >> WriteToBigQueryClient(
                f"{self.project}.{spec.dataset}.{spec.name}",
                bigquery_schema(spec),
                project=self.project,
                endpoint=self.endpoint,
            )
        )
