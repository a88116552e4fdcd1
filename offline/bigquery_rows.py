"""Rows shaped for a BigQuery table: column order, Arrow types, and time ranges.

`conform(rows, schema)` turns a pyarrow Table or RecordBatch, a pandas DataFrame or a
list of dicts into an Arrow table with exactly the schema's columns, in its order, one
Arrow type per BigQuery type: TIMESTAMP as timezone-aware UTC microseconds (naive or
sub-microsecond values are refused, not guessed or truncated), REPEATED columns as
lists without NULL elements (a NULL array becomes an empty one, as in BigQuery),
REQUIRED columns without NULLs. It raises `BigQueryWriteError` naming the column; the
emulator enforces none of this on loads, BigQuery enforces all of it.

`TimeRange` is the half-open `[start, end)` of a TIMESTAMP column that a write replaces:
its SQL predicate, and the check that rows lie inside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from google.cloud import bigquery

from feature_store.errors import ConfigError, FeatureStoreError

Rows: TypeAlias = pa.Table | pa.RecordBatch | pd.DataFrame | Sequence[Mapping[str, Any]]

_UTC_MICROS = pa.timestamp("us", tz="UTC")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "BYTES": pa.binary(),
    "INT64": pa.int64(),
    "INTEGER": pa.int64(),
    "FLOAT64": pa.float64(),
    "FLOAT": pa.float64(),
    "BOOL": pa.bool_(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": _UTC_MICROS,
    "DATETIME": pa.timestamp("us"),
    "DATE": pa.date32(),
}


class BigQueryWriteError(FeatureStoreError, ValueError):
    """Rows do not fit the BigQuery table they are written to."""


@dataclass(frozen=True, kw_only=True)
class TimeRange:
    """The half-open range `[start, end)` of a TIMESTAMP column that a write replaces."""

    field: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        check_identifier(self.field)
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None:
                msg = f"time range {name} must be timezone-aware, got {value.isoformat()}"
                raise ConfigError(msg)
        if self.start >= self.end:
            msg = f"time range must have start < end, got [{self.start}, {self.end})"
            raise ConfigError(msg)

    def where_sql(self) -> str:
        """The SQL predicate selecting the range.

        Literals, not query parameters: the emulator binds no job parameters inside a
        multi-statement script, and BigQuery reads the literals the same way.
        """
        column = f"`{self.field}`"
        start, end = timestamp_literal(self.start), timestamp_literal(self.end)
        return f"{column} >= {start} AND {column} < {end}"

    def check(self, table: pa.Table) -> None:
        """Raise unless every row's `field` lies in the range."""
        values = table.column(self.field)
        start = pa.scalar(self.start, _UTC_MICROS)
        end = pa.scalar(self.end, _UTC_MICROS)
        outside = pc.invert(pc.and_(pc.greater_equal(values, start), pc.less(values, end)))
        outside = pc.fill_null(outside, fill_value=True)
        if pc.any(outside).as_py():
            first = values.filter(outside)[0].as_py()
            count = pc.sum(outside.cast(pa.int64())).as_py()
            msg = (
                f"{count} row(s) have `{self.field}` outside [{self.start}, {self.end}), "
                f"e.g. {first}"
            )
            raise BigQueryWriteError(msg)


def timestamp_literal(value: datetime) -> str:
    """A BigQuery TIMESTAMP literal, in UTC to the microsecond."""
    if value.tzinfo is None:
        msg = f"timestamp must be timezone-aware, got {value.isoformat()}"
        raise ConfigError(msg)
    return f"TIMESTAMP '{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}+00:00'"


def check_identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        msg = f"column name must be letters, digits and _, got {name!r}"
        raise ConfigError(msg)
    return name


def arrow_type(field: bigquery.SchemaField) -> pa.DataType:
    """The Arrow type a BigQuery column's values are written as."""
    base = _ARROW_TYPES.get(field.field_type)
    if base is None:
        msg = f"column `{field.name}` has BigQuery type {field.field_type}, which is not supported"
        raise ConfigError(msg)
    return pa.list_(base) if field.mode == "REPEATED" else base


def conform(rows: Rows, schema: Sequence[bigquery.SchemaField]) -> pa.Table:
    """`rows` as an Arrow table with exactly the schema's columns, order and types.

    A table or DataFrame must have every column (a missing one is more likely a bug than
    a column of NULLs); a dict row may leave out NULLABLE values, as in BigQuery's JSON.
    """
    table = _as_arrow(rows, schema)
    names = [f.name for f in schema]
    missing = [n for n in names if n not in table.column_names]
    extra = [n for n in table.column_names if n not in names]
    if missing or extra:
        msg = f"rows do not match the table's columns: missing {missing}, unexpected {extra}"
        raise BigQueryWriteError(msg)
    columns = [_conform_column(f, table.column(f.name)) for f in schema]
    return pa.Table.from_arrays(columns, schema=pa.schema([_arrow_field(f) for f in schema]))


def _arrow_field(field: bigquery.SchemaField) -> pa.Field:
    return pa.field(field.name, arrow_type(field), nullable=field.mode != "REQUIRED")


def _as_arrow(rows: Rows, schema: Sequence[bigquery.SchemaField]) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    if isinstance(rows, pd.DataFrame):
        return pa.Table.from_pandas(rows, preserve_index=False)
    return _dicts_to_arrow(list(rows), schema)


def _dicts_to_arrow(
    rows: list[Mapping[str, Any]], schema: Sequence[bigquery.SchemaField]
) -> pa.Table:
    names = {f.name for f in schema}
    timestamps = [f.name for f in schema if f.field_type == "TIMESTAMP"]
    for row in rows:
        extra = row.keys() - names
        if extra:
            msg = f"row has columns the table lacks: {sorted(extra)}"
            raise BigQueryWriteError(msg)
        for name in timestamps:
            value = row.get(name)
            if isinstance(value, datetime) and value.tzinfo is None:
                msg = f"`{name}` must be a timezone-aware datetime, got naive {value.isoformat()}"
                raise BigQueryWriteError(msg)
    arrow_schema = pa.schema([pa.field(f.name, arrow_type(f)) for f in schema])
    try:
        return pa.Table.from_pylist(rows, schema=arrow_schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        msg = f"rows do not convert to the table's types: {exc}"
        raise BigQueryWriteError(msg) from exc


def _conform_column(field: bigquery.SchemaField, column: pa.ChunkedArray) -> pa.ChunkedArray:
    target = arrow_type(field)
    source = column.type.value_type if pa.types.is_list(column.type) else column.type
    if field.field_type == "TIMESTAMP" and not _is_aware_or_null(source):
        msg = f"`{field.name}` must hold timezone-aware timestamps, got {column.type}"
        raise BigQueryWriteError(msg)
    try:
        conformed = column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        msg = f"`{field.name}` of type {column.type} does not convert to {target}: {exc}"
        raise BigQueryWriteError(msg) from exc
    if field.mode == "REPEATED":
        return _conform_repeated(field.name, conformed)
    if field.mode == "REQUIRED" and conformed.null_count:
        msg = f"`{field.name}` is REQUIRED but {conformed.null_count} row(s) are NULL"
        raise BigQueryWriteError(msg)
    return conformed


def _is_aware_or_null(arrow: pa.DataType) -> bool:
    """No guessing: not integers (which unit?), strings or naive times (which zone?)."""
    return bool(pa.types.is_null(arrow) or (pa.types.is_timestamp(arrow) and arrow.tz))


def _conform_repeated(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """BigQuery arrays have no NULL elements, and a NULL array is an empty one."""
    elements = pc.list_flatten(column)
    if elements.null_count:
        msg = f"REPEATED `{name}` has {elements.null_count} NULL element(s); BigQuery has none"
        raise BigQueryWriteError(msg)
    return pc.fill_null(column, pa.scalar([], column.type))
