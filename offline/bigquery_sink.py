"""Write rows to BigQuery through load jobs, the same way against real BigQuery and the emulator.

Rows (a pyarrow Table or RecordBatch, a pandas DataFrame, or a list of dicts) are first
conformed to the BigQuery schema: the schema's column order, one Arrow type per BigQuery
type, TIMESTAMPs as timezone-aware UTC microseconds, REPEATED columns without NULL
elements. Then they go as one Parquet file per load job. Parquet rather than NDJSON:
it carries float64 bits, int64 and microsecond timestamps exactly and NaN at all, and is
what BigQuery loads fastest. Both formats round-trip TIMESTAMP microseconds, NULLs,
FLOAT64, INT64, STRING and REPEATED FLOAT64 (from float32 or float64 arrays) on the
emulator, but the emulator loads Parquet *by position* (`INSERT INTO t SELECT * FROM
read_parquet(...)`) where BigQuery matches by name: a file whose columns are in another
order than the table's is loaded into the wrong columns, silently when the types agree.
So `load_rows` always writes the columns in the destination table's own order.

`replace_range` makes re-runs idempotent: it loads the rows into a staging table, then
deletes the target's rows in `[start, end)` and inserts the staged ones in one
multi-statement transaction, and drops the staging table. Readers never see the range
empty or doubled, and a failure leaves the old rows. (Deleting, then loading, would be
two jobs with a window between them.) The emulator runs DML DELETE and BEGIN/COMMIT
TRANSACTION, rolling back on error. It does not bind job query parameters inside a
multi-statement script, so the range is written as TIMESTAMP literals, which BigQuery
reads the same way.

`WriteToBigQueryClient` does the same from Beam: each bundle's rows are buffered and
loaded into staging tables, and a single commit step appends, truncates or replaces a
range in one transaction. Only successful bundles' staging tables reach the commit, so a
retried bundle does not write twice; the staging tables of failed attempts expire.

Partitioning and clustering (`ensure_table`) are kept in the table definition for
production. The emulator stores and returns them (`tables.get`, INFORMATION_SCHEMA) and
lists `INFORMATION_SCHEMA.PARTITIONS`, but they change nothing else: no partition
pruning or clustering, and it does not check them the way BigQuery does, so
`ensure_table` checks them itself (the partition field must be a top-level TIMESTAMP or
DATE column, at most four non-repeated clustering columns of clusterable types). It
does not enforce REQUIRED on loads either; `conform` does.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import apache_beam as beam
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.pvalue import PCollection
from apache_beam.transforms import combiners
from apache_beam.transforms.window import GlobalWindows
from google.api_core.exceptions import GoogleAPIError, NotFound
from google.cloud import bigquery

from common.bigquery_client import cached_client, make_client
from feature_store.errors import ConfigError
from offline.bigquery_rows import (
    BigQueryWriteError,
    Rows,
    TimeRange,
    arrow_type,
    check_identifier,
    conform,
)

__all__ = [
    "BigQueryWriteError",
    "TimeRange",
    "WriteToBigQueryClient",
    "commit_script",
    "conform",
    "ensure_table",
    "load_rows",
    "make_client",
    "replace_range",
]

logger = logging.getLogger(__name__)

WriteDisposition = Literal["WRITE_APPEND", "WRITE_TRUNCATE", "WRITE_EMPTY"]

STAGING_TTL = timedelta(hours=6)
_MAX_CLUSTERING_FIELDS = 4
_CLUSTERABLE = {"STRING", "INT64", "INTEGER", "BOOL", "BOOLEAN", "DATE", "TIMESTAMP", "DATETIME"}
_PROJECT = re.compile(r"[a-z][a-z0-9.:-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def table_id(client: bigquery.Client, table_ref: str) -> str:
    """`table_ref` (`[project.]dataset.table`) checked and fully qualified."""
    try:
        ref = bigquery.TableReference.from_string(table_ref, default_project=client.project)
    except ValueError:
        ref = None
    if (
        ref is None
        or not _PROJECT.fullmatch(ref.project)
        or not all(_IDENTIFIER.fullmatch(part) for part in (ref.dataset_id, ref.table_id))
    ):
        msg = f"table reference must be [project.]dataset.table, got {table_ref!r}"
        raise ConfigError(msg)
    return f"{ref.project}.{ref.dataset_id}.{ref.table_id}"


def table_sql(client: bigquery.Client, table_ref: str) -> str:
    """`table_ref` as a quoted SQL table name."""
    return f"`{table_id(client, table_ref)}`"


# -- Tables and load jobs -------------------------------------------------------------


def ensure_table(
    client: bigquery.Client,
    table_ref: str,
    schema: Sequence[bigquery.SchemaField],
    *,
    partition_field: str | None = None,
    clustering_fields: Sequence[str] = (),
    expires: datetime | None = None,
) -> bigquery.Table:
    """Create the table if it is missing; raise if an existing one has other columns."""
    _check_layout(schema, partition_field, clustering_fields)
    table = bigquery.Table(table_id(client, table_ref), schema=list(schema))
    if partition_field:
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=partition_field
        )
    if clustering_fields:
        table.clustering_fields = list(clustering_fields)
    table.expires = expires
    existing = client.create_table(table, exists_ok=True)
    _check_same_columns(table_ref, schema, existing.schema)
    if (existing.time_partitioning, existing.clustering_fields or None) != (
        table.time_partitioning,
        table.clustering_fields or None,
    ):
        logger.warning(
            "table %s exists partitioned by %s and clustered by %s, not as asked (%s, %s)",
            table_ref,
            existing.time_partitioning,
            existing.clustering_fields,
            table.time_partitioning,
            table.clustering_fields,
        )
    return existing


def _check_layout(
    schema: Sequence[bigquery.SchemaField],
    partition_field: str | None,
    clustering_fields: Sequence[str],
) -> None:
    """What BigQuery refuses and the emulator accepts: checked here so both agree."""
    for field in schema:
        check_identifier(field.name)
        arrow_type(field)  # raises for a type the writer cannot produce
    fields = {f.name: f for f in schema}
    if partition_field is not None and not _is_top_level(
        fields.get(partition_field), ("TIMESTAMP", "DATE")
    ):
        msg = f"partition field must be a TIMESTAMP or DATE column, got {partition_field!r}"
        raise ConfigError(msg)
    if len(clustering_fields) > _MAX_CLUSTERING_FIELDS:
        msg = f"BigQuery clusters by at most 4 columns, got {list(clustering_fields)}"
        raise ConfigError(msg)
    for name in clustering_fields:
        if not _is_top_level(fields.get(name), _CLUSTERABLE):
            msg = f"clustering field must be a non-repeated clusterable column, got {name!r}"
            raise ConfigError(msg)


def _is_top_level(field: bigquery.SchemaField | None, types: Collection[str]) -> bool:
    return field is not None and field.field_type in types and field.mode != "REPEATED"


def _check_same_columns(
    table_ref: str,
    wanted: Sequence[bigquery.SchemaField],
    actual: Sequence[bigquery.SchemaField],
) -> None:
    def shape(fields: Sequence[bigquery.SchemaField]) -> set[tuple[str, pa.DataType]]:
        return {(f.name, arrow_type(f)) for f in fields}

    if shape(wanted) != shape(actual):
        msg = (
            f"table {table_ref} exists with other columns: "
            f"{sorted(map(str, shape(actual) - shape(wanted)))} instead of "
            f"{sorted(map(str, shape(wanted) - shape(actual)))}"
        )
        raise ConfigError(msg)


def _destination_schema(
    client: bigquery.Client, table_ref: str, schema: Sequence[bigquery.SchemaField] | None
) -> list[bigquery.SchemaField]:
    """The schema to load with, in the existing table's column order."""
    try:
        actual = list(client.get_table(table_ref).schema)
    except NotFound:
        if schema is None:
            msg = f"table {table_ref} does not exist and no schema was given to create it"
            raise ConfigError(msg) from None
        return list(schema)
    if schema is not None:
        _check_same_columns(table_ref, schema, actual)
    return actual


def load_rows(
    client: bigquery.Client,
    table_ref: str,
    rows: Rows,
    schema: Sequence[bigquery.SchemaField] | None = None,
    write_disposition: WriteDisposition = "WRITE_APPEND",
    *,
    timeout: float | None = None,
) -> int:
    """Load `rows` with one Parquet load job; returns the number of rows loaded.

    `schema` is needed only to create a missing table (then without partitioning: use
    `ensure_table` for that); otherwise the live table's schema and order are used.
    On the emulator a failing `WRITE_TRUNCATE` load has already deleted the old rows
    (BigQuery keeps them); rows are conformed first so that data errors fail here.
    """
    fields = _destination_schema(client, table_ref, schema)
    table = conform(rows, fields)
    if table.num_rows == 0:
        if write_disposition == "WRITE_TRUNCATE":
            client.query(f"DELETE FROM {table_sql(client, table_ref)} WHERE TRUE").result()
        return 0
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        schema=fields,
        write_disposition=write_disposition,
        create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
    )
    config.parquet_options = bigquery.format_options.ParquetOptions()
    config.parquet_options.enable_list_inference = True  # REPEATED from Parquet LIST
    job = client.load_table_from_file(_parquet(table), table_ref, job_config=config)
    job.result(timeout=timeout)
    logger.debug("loaded %d rows into %s (job %s)", table.num_rows, table_ref, job.job_id)
    return int(table.num_rows)


def _parquet(table: pa.Table) -> io.BytesIO:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    buffer.seek(0)
    return buffer


# -- Staged, transactional writes -----------------------------------------------------


def commit_script(
    target: str,
    staged: Sequence[str],
    columns: Sequence[str],
    *,
    delete_where: str | None = None,
) -> str:
    """One transaction: optionally delete rows of `target`, then insert the staged rows."""
    statements = ["BEGIN TRANSACTION;"]
    if delete_where is not None:
        statements.append(f"DELETE FROM {target} WHERE {delete_where};")
    if staged:
        names = ", ".join(f"`{check_identifier(c)}`" for c in columns)
        selects = "\nUNION ALL\n".join(f"SELECT {names} FROM {s}" for s in staged)
        statements.append(f"INSERT INTO {target} ({names})\n{selects};")
    statements.append("COMMIT TRANSACTION;")
    return "\n".join(statements)


def stage_rows(
    client: bigquery.Client, table_ref: str, table: pa.Table, schema: Sequence[bigquery.SchemaField]
) -> str:
    """Load conformed rows into a new, expiring staging table next to `table_ref`."""
    staging = f"{table_id(client, table_ref)}__staging_{uuid.uuid4().hex[:16]}"
    ensure_table(client, staging, schema, expires=datetime.now(UTC) + STAGING_TTL)
    load_rows(client, staging, table)
    return staging


def commit_staged(
    client: bigquery.Client,
    table_ref: str,
    staged: Sequence[str],
    columns: Sequence[str],
    *,
    delete_where: str | None = None,
) -> None:
    """Run the commit transaction, then drop the staging tables."""
    script = commit_script(
        table_sql(client, table_ref),
        [table_sql(client, s) for s in staged],
        columns,
        delete_where=delete_where,
    )
    try:
        client.query(script).result()
    finally:
        for staging in staged:
            _drop_staging(client, staging)


def _drop_staging(client: bigquery.Client, staging: str) -> None:
    """Best effort: a staging table left behind expires (`STAGING_TTL`) on BigQuery."""
    try:
        client.delete_table(staging, not_found_ok=True)
    except GoogleAPIError:
        logger.warning("could not drop staging table %s", staging, exc_info=True)


def replace_range(
    client: bigquery.Client,
    table_ref: str,
    rows: Rows,
    *,
    time_field: str,
    start: datetime,
    end: datetime,
) -> int:
    """Replace the rows of `table_ref` whose `time_field` is in `[start, end)` by `rows`.

    Idempotent: running it again with the same rows leaves the same table. Every row
    must lie in the range (else a re-run would duplicate it). Returns the rows written.
    """
    window = TimeRange(field=time_field, start=start, end=end)
    schema = list(client.get_table(table_ref).schema)
    if not any(f.name == time_field and f.field_type == "TIMESTAMP" for f in schema):
        msg = f"`{time_field}` is not a TIMESTAMP column of {table_ref}"
        raise ConfigError(msg)
    table = conform(rows, schema)
    window.check(table)
    staged = [stage_rows(client, table_ref, table, schema)] if table.num_rows else []
    commit_staged(
        client, table_ref, staged, [f.name for f in schema], delete_where=window.where_sql()
    )
    logger.info("replaced %s in %s with %d rows", window, table_ref, table.num_rows)
    return int(table.num_rows)


# -- Beam -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Target:
    project: str
    endpoint: str | None
    table_ref: str
    schema: tuple[bigquery.SchemaField, ...]
    write_disposition: WriteDisposition
    replace: TimeRange | None

    def client(self) -> bigquery.Client:
        return cached_client(self.project, self.endpoint)

    def delete_where(self) -> str | None:
        if self.replace is not None:
            return self.replace.where_sql()
        return "TRUE" if self.write_disposition == "WRITE_TRUNCATE" else None


class _StageBatchesFn(beam.DoFn):
    """Buffers a bundle's rows and loads them into staging tables; emits (table, rows)."""

    def __init__(self, target: _Target, max_rows_per_load: int) -> None:
        self._target = target
        self._max_rows = max_rows_per_load
        self._tables: list[pa.Table] = []
        self._dicts: list[Mapping[str, Any]] = []
        self._buffered = 0

    def setup(self) -> None:
        self._client = self._target.client()

    def start_bundle(self) -> None:
        self._tables, self._dicts, self._buffered = [], [], 0

    def process(self, element: Any) -> Iterator[tuple[str, int]]:
        if isinstance(element, Mapping):
            self._dicts.append(element)
            self._buffered += 1
        elif isinstance(element, pa.Table | pa.RecordBatch | pd.DataFrame):
            self._tables.append(conform(element, self._target.schema))
            self._buffered += len(element)
        elif isinstance(element, Sequence) and not isinstance(element, str | bytes):
            self._dicts.extend(element)
            self._buffered += len(element)
        else:
            msg = f"cannot write a {type(element).__name__} as rows: {element!r:.100}"
            raise BigQueryWriteError(msg)
        if self._buffered >= self._max_rows:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        for staged in self._flush():
            yield GlobalWindows.windowed_value(staged)

    def _flush(self) -> Iterator[tuple[str, int]]:
        if self._dicts:
            self._tables.append(conform(self._dicts, self._target.schema))
        table = pa.concat_tables(self._tables) if self._tables else None
        self._tables, self._dicts, self._buffered = [], [], 0
        if table is not None and table.num_rows:
            if self._target.replace is not None:
                self._target.replace.check(table)
            staging = stage_rows(self._client, self._target.table_ref, table, self._target.schema)
            yield staging, table.num_rows


def _commit(staged: list[tuple[str, int]], target: _Target) -> int:
    columns = [f.name for f in target.schema]
    tables = sorted(name for name, _ in staged)
    commit_staged(
        target.client(), target.table_ref, tables, columns, delete_where=target.delete_where()
    )
    rows = sum(n for _, n in staged)
    logger.info(
        "committed %d rows from %d staging tables to %s", rows, len(tables), target.table_ref
    )
    return rows


class WriteToBigQueryClient(beam.PTransform[PCollection[Any], PCollection[int]]):
    """Write a bounded PCollection of row batches to an existing BigQuery table.

    Elements are pyarrow RecordBatches or Tables, DataFrames, lists of dict rows, or
    single dict rows. Each bundle's rows are loaded into staging tables (one load job per
    `max_rows_per_load` rows), then one transaction appends them (`WRITE_APPEND`),
    replaces the table (`WRITE_TRUNCATE`) or replaces `replace`'s time range. The output
    is a single element: the number of rows written. Batch pipelines only (the commit
    waits for the whole input in the global window).
    """

    def __init__(
        self,
        table_ref: str,
        schema: Sequence[bigquery.SchemaField],
        *,
        project: str,
        endpoint: str | None = None,
        write_disposition: WriteDisposition = "WRITE_APPEND",
        replace: TimeRange | None = None,
        max_rows_per_load: int = 500_000,
    ) -> None:
        super().__init__()
        if write_disposition not in ("WRITE_APPEND", "WRITE_TRUNCATE"):
            msg = (
                f"write_disposition must be WRITE_APPEND or WRITE_TRUNCATE, got {write_disposition}"
            )
            raise ConfigError(msg)
        if replace is not None and write_disposition != "WRITE_APPEND":
            msg = f"replace={replace} already says what is deleted; got {write_disposition}"
            raise ConfigError(msg)
        if max_rows_per_load <= 0:
            msg = f"max_rows_per_load must be positive, got {max_rows_per_load}"
            raise ConfigError(msg)
        _check_layout(schema, None, ())
        self._target = _Target(
            project=project,
            endpoint=endpoint,
            table_ref=table_ref,
            schema=tuple(schema),
            write_disposition=write_disposition,
            replace=replace,
        )
        self._max_rows = max_rows_per_load

    def expand(self, pcoll: PCollection[Any]) -> PCollection[int]:
        written: PCollection[int] = (
            pcoll
            | "StageBatches" >> beam.ParDo(_StageBatchesFn(self._target, self._max_rows))
            | "CollectStaged" >> combiners.ToList()
            | "Commit" >> beam.Map(_commit, target=self._target)
        )
        return written
