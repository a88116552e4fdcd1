"""The nightly backfill as composite transforms: archive → exact features → outputs.

    ReadArchive → ValidateEvents (→ dead letters) → DeduplicateEvents → Reshuffle →
    EngineerFeatures (group by view and entity, run the core) → Reshuffle →
    WriteOffline (Arrow batches → load jobs into a staging table per view)
    and the latest row of each entity → the online stores (wired by the job).

Each stage is one labelled transform so that the job can give it its own resource hints
(and an inference stage can slot in between EngineerFeatures and the writers).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from feature_store.plan import ViewPlan
from feature_store.windowing import RowBatch
from offline.arrow_rows import to_arrow

log = logging.getLogger(__name__)


class _ToArrowBatches(beam.DoFn):  # type: ignore[misc]
    """Buffers a bundle's RowBatches per view and emits one Arrow table per view."""

    def __init__(
        self, plans: Sequence[ViewPlan], computed_at_us: int, max_rows: int = 500_000
    ) -> None:
        self.plans = {p.view: p for p in plans}
        self.computed_at_us = computed_at_us
        self.max_rows = max_rows

    def start_bundle(self) -> None:
        self.buffer: dict[str, list[RowBatch]] = defaultdict(list)
        self.sizes: dict[str, int] = defaultdict(int)

    def process(self, batch: RowBatch) -> Iterator[tuple[str, pa.Table]]:
        self.buffer[batch.view].append(batch)
        self.sizes[batch.view] += len(batch)
        if self.sizes[batch.view] >= self.max_rows:
            yield self._flush(batch.view)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for view in list(self.buffer):
            if self.buffer[view]:
                yield WindowedValue(
                    self._flush(view), GlobalWindow().max_timestamp(), [GlobalWindow()]
                )

    def _flush(self, view: str) -> tuple[str, pa.Table]:
        batches, self.buffer[view], self.sizes[view] = self.buffer[view], [], 0
        return view, to_arrow(self.plans[view], batches, self.computed_at_us)


class _LoadIntoStaging(beam.DoFn):  # type: ignore[misc]
    """One load job per Arrow table into the view's staging table (WRITE_APPEND)."""

    def __init__(self, project: str, endpoint: str | None, staging: dict[str, str]) -> None:
        self.project, self.endpoint, self.staging = project, endpoint, staging
        self.rows = Metrics.counter("backfill", "offline_rows_written")

    def process(self, item: tuple[str, pa.Table]) -> Iterator[tuple[str, int]]:
        from google.cloud import bigquery

        from offline.bigquery_client import make_client

        view, table = item
        client = make_client(self.project, self.endpoint)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        job = client.load_table_from_file(
            pa.BufferReader(sink.getvalue()),
            self.staging[view],
            job_config=bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.PARQUET,
                write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
                create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
                parquet_options=_list_inference(),
            ),
        )
        job.result()
        self.rows.inc(table.num_rows)
        yield view, table.num_rows


def _list_inference() -> Any:
    from google.cloud.bigquery.format_options import ParquetOptions

    options = ParquetOptions()
    options.enable_list_inference = True
    return options


class WriteOffline(beam.PTransform):  # type: ignore[misc]
    """RowBatches → Arrow tables → load jobs into staging tables (swapped in afterwards)."""

    def __init__(
        self,
        plans: Sequence[ViewPlan],
        computed_at_us: int,
        project: str,
        endpoint: str | None,
        staging: dict[str, str],
    ) -> None:
        super().__init__()
        self.plans, self.computed_at_us = list(plans), computed_at_us
        self.project, self.endpoint, self.staging = project, endpoint, staging

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return (
            rows
            | "ArrowBatches" >> beam.ParDo(_ToArrowBatches(self.plans, self.computed_at_us))
            | "LoadStaging"
            >> beam.ParDo(_LoadIntoStaging(self.project, self.endpoint, self.staging))
        )
