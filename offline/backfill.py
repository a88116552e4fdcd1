"""The nightly backfill as composite transforms: archive → exact features → outputs.

    ReadArchive → ValidateEvents (→ dead letters) → DeduplicateEvents →
    KeyForFeatures (columnar, fused with de-duplication) →
    EngineerFeatures (group by view and entity shard, run the core; a shard's rows leave
    as one element) → Reshuffle →
    WriteOffline (Arrow batches → load jobs, one replacing transaction per view)
    and the latest row of each entity → the online stores (wired by the job).

Each stage is one labelled transform so that the job can give it its own resource hints
(and an inference stage can slot in between EngineerFeatures and the writers).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics.metric import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from common.beam_types import PColl, Transform
from common.bigquery_admin import bigquery_schema
from common.row_coder import RowBatches
from common.stages import IO_HINTS, Stage
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch
from feature_store.errors import ConfigError
from feature_store.feast_repo import VALID_FROM
from feature_store.schemas import TableSpec
from offline.arrow_rows import to_arrow
from offline.bigquery_rows import TimeRange
from offline.bigquery_sink import WriteToBigQueryClient

log = logging.getLogger(__name__)


class _ToArrowBatches(beam.DoFn):
    """Buffers a bundle's RowBatches (a shard's `RowBatches` at a time) per view and
    emits one Arrow table per view."""

    def __init__(
        self, plans: Sequence[ViewPlan], computed_at_us: int, max_rows: int = 500_000
    ) -> None:
        self.plans = {p.view: p for p in plans}
        self.computed_at_us = computed_at_us
        self.max_rows = max_rows

    def start_bundle(self) -> None:
        self.buffer: dict[str, list[RowBatch]] = defaultdict(list)
        self.sizes: dict[str, int] = defaultdict(int)

    def process(self, shard: RowBatches) -> Iterator[tuple[str, pa.Table]]:
        for batch in shard:
            self.buffer[batch.view].append(batch)
            self.sizes[batch.view] += len(batch)
            if self.sizes[batch.view] >= self.max_rows:
                yield self._flush(batch.view)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for view in list(self.buffer):
            if self.buffer[view]:
                yield WindowedValue(
                    self._flush(view), GlobalWindow().max_timestamp(), (GlobalWindow(),)
                )

    def _flush(self, view: str) -> tuple[str, pa.Table]:
        batches, self.buffer[view], self.sizes[view] = self.buffer[view], [], 0
        table = to_arrow(self.plans[view], batches, self.computed_at_us)
        Metrics.counter("backfill", f"offline_rows_{view}").inc(table.num_rows)
        return view, table


class WriteOffline(Stage):
    """`RowBatches` (a shard's each) → Arrow tables per view → each view's change-point
    table.

    `sink="client"` loads through the google-cloud-bigquery client (works against the
    emulator and BigQuery; replaces exactly the backfilled range in one transaction);
    `sink="beam"` uses Beam's `WriteToBigQuery` file loads (Dataflow; whole-table
    rebuilds only, since it cannot delete a range).
    """

    RESOURCE_HINTS = IO_HINTS

    def __init__(
        self,
        plans: Sequence[ViewPlan],
        tables: dict[str, TableSpec],
        computed_at_us: int,
        project: str,
        endpoint: str | None,
        replace: tuple[datetime, datetime] | None,
        sink: str = "client",
    ) -> None:
        super().__init__()
        if sink not in ("client", "beam"):
            msg = f"BigQuery sink must be client or beam, got {sink!r}"
            raise ConfigError(msg)
        if sink == "beam" and replace is not None:
            msg = "the beam BigQuery sink rebuilds whole tables; use the client sink with --start"
            raise ConfigError(msg)
        self.plans, self.tables, self.computed_at_us = list(plans), tables, computed_at_us
        self.project, self.endpoint, self.replace, self.sink = project, endpoint, replace, sink

    def expand(self, rows: PColl) -> beam.pvalue.PDone:
        batches = rows | "ArrowBatches" >> beam.ParDo(
            _ToArrowBatches(self.plans, self.computed_at_us)
        )
        for plan in self.plans:
            spec = self.tables[plan.view]
            table_ref = f"{self.project}.{spec.dataset}.{spec.name}"
            mine = (
                batches
                | f"Only {plan.view}" >> beam.Filter(lambda item, v=plan.view: item[0] == v)
                | f"Table {plan.view}" >> beam.Map(lambda item: item[1])
            )
            _ = mine | f"Write {plan.view}" >> self._writer(spec, table_ref)
        return beam.pvalue.PDone(rows.pipeline)

    def _writer(self, spec: TableSpec, table_ref: str) -> Transform:
        schema = bigquery_schema(spec)
        if self.sink == "beam":
            return _BeamFileLoads(table_ref, schema)
        if self.replace is None:
            return WriteToBigQueryClient(
                table_ref,
                schema,
                project=self.project,
                endpoint=self.endpoint,
                write_disposition="WRITE_TRUNCATE",
            )
        start, end = self.replace
        return WriteToBigQueryClient(
            table_ref,
            schema,
            project=self.project,
            endpoint=self.endpoint,
            replace=TimeRange(field=VALID_FROM, start=start, end=end + timedelta(microseconds=1)),
        )


class _BeamFileLoads(Transform):
    """Beam's own BigQuery sink (file loads), for Dataflow."""

    def __init__(self, table_ref: str, schema: list[Any]) -> None:
        super().__init__()
        self.table_ref, self.schema = table_ref, schema

    def expand(self, tables: PColl) -> Any:
        from apache_beam.io.gcp.bigquery import BigQueryDisposition, WriteToBigQuery

        fields = [{"name": f.name, "type": f.field_type, "mode": f.mode} for f in self.schema]
        return (
            tables
            | "Rows" >> beam.FlatMap(lambda t: t.to_pylist())
            | "WriteToBigQuery"
            >> WriteToBigQuery(
                self.table_ref.replace(".", ":", 1),
                schema={"fields": fields},
                method=WriteToBigQuery.Method.FILE_LOADS,
                write_disposition=BigQueryDisposition.WRITE_TRUNCATE,
                create_disposition=BigQueryDisposition.CREATE_NEVER,
            )
        )
