"""The BigQuery writer against the emulator: exact round trips, layout, idempotent ranges, Beam."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from google.cloud import bigquery

from feature_store.config import LOCAL_PROJECT
from feature_store.errors import ConfigError
from offline.bigquery_rows import BigQueryWriteError, TimeRange
from offline.bigquery_sink import (
    WriteToBigQueryClient,
    ensure_table,
    load_rows,
    make_client,
    replace_range,
)
from tests.integration.bq_emulator import emulator_endpoint, scratch_dataset

pytestmark = pytest.mark.integration

US = timedelta(microseconds=1)
DAY = timedelta(days=1)
T0 = datetime(2024, 5, 1, tzinfo=UTC)
SCHEMA = [
    bigquery.SchemaField("user_id", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("valid_from", "TIMESTAMP", mode="REQUIRED"),
    bigquery.SchemaField("score", "FLOAT64"),
    bigquery.SchemaField("clicks", "INT64"),
    bigquery.SchemaField("embedding", "FLOAT64", mode="REPEATED"),
    bigquery.SchemaField("computed_at", "TIMESTAMP"),
]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        yield emulator_endpoint(patch)


@pytest.fixture(scope="module")
def client(endpoint: str) -> bigquery.Client:
    return make_client(LOCAL_PROJECT, endpoint)


@pytest.fixture(scope="module")
def dataset(client: bigquery.Client) -> Iterator[str]:
    with scratch_dataset(client, "sink") as name:
        yield name


_tables = iter(range(1_000_000))


@pytest.fixture
def table(client: bigquery.Client, dataset: str) -> str:
    ref = f"{LOCAL_PROJECT}.{dataset}.changes_{next(_tables)}"
    ensure_table(client, ref, SCHEMA, partition_field="valid_from", clustering_fields=["user_id"])
    return ref


def _read(client: bigquery.Client, table: str) -> list[dict[str, Any]]:
    sql = f"SELECT * FROM `{table}` ORDER BY user_id, valid_from"
    rows: list[dict[str, Any]] = (
        client.query(sql).to_arrow(create_bqstorage_client=False).to_pylist()
    )
    return rows


def _row(user: str, valid_from: datetime, **values: Any) -> dict[str, Any]:
    row = {"score": None, "clicks": None, "embedding": [], "computed_at": None}
    return {**row, **values, "user_id": user, "valid_from": valid_from}


def _staging_tables(client: bigquery.Client, dataset: str) -> list[str]:
    return [t.table_id for t in client.list_tables(dataset) if "__staging_" in t.table_id]


# -- load_rows and ensure_table ------------------------------------------------------------


def test_load_round_trips_values_exactly(client: bigquery.Client, table: str) -> None:
    # Columns deliberately in another order than the table's: the emulator loads Parquet
    # by position, BigQuery by name; load_rows must make both right.
    rows = pa.table(
        {
            "embedding": pa.array([[0.1, 1e-30], None, [float("inf")]], pa.list_(pa.float32())),
            "computed_at": pa.array([T0, None, T0 + US], pa.timestamp("ns", tz="UTC")),
            "clicks": pa.array([2**62 + 1, None, -(2**63)], pa.int64()),
            "score": [0.1 + 0.2, None, float("nan")],
            "valid_from": pa.array(
                [T0 + US, T0 + DAY - US, datetime(1970, 1, 1, tzinfo=UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
            "user_id": ["a", "b", "c"],
        }
    )
    assert load_rows(client, table, rows) == 3
    got = _read(client, table)
    assert got[:2] == [
        _row(
            "a",
            T0 + US,
            score=0.1 + 0.2,
            clicks=2**62 + 1,
            embedding=[float(np.float32(0.1)), float(np.float32(1e-30))],
            computed_at=T0,
        ),
        _row("b", T0 + DAY - US),
    ]
    last = got[2]
    assert math.isnan(last.pop("score"))
    assert last == {
        "user_id": "c",
        "valid_from": datetime(1970, 1, 1, tzinfo=UTC),
        "clicks": -(2**63),
        "embedding": [math.inf],
        "computed_at": T0 + US,
    }


def test_same_typed_columns_land_by_name(client: bigquery.Client, dataset: str) -> None:
    ref = f"{LOCAL_PROJECT}.{dataset}.two_strings"
    ensure_table(
        client, ref, [bigquery.SchemaField("a", "STRING"), bigquery.SchemaField("b", "STRING")]
    )
    load_rows(client, ref, pa.table({"b": ["B"], "a": ["A"]}))
    load_rows(client, ref, [{"b": "B2", "a": "A2"}])
    rows = client.query(f"SELECT a, b FROM `{ref}` ORDER BY a").to_arrow(
        create_bqstorage_client=False
    )
    assert rows.to_pylist() == [{"a": "A", "b": "B"}, {"a": "A2", "b": "B2"}]


def test_write_truncate_replaces_everything(client: bigquery.Client, table: str) -> None:
    load_rows(client, table, [_row("a", T0), _row("b", T0)])
    assert load_rows(client, table, [_row("c", T0 + US)], write_disposition="WRITE_TRUNCATE") == 1
    assert _read(client, table) == [_row("c", T0 + US)]
    assert load_rows(client, table, [], write_disposition="WRITE_TRUNCATE") == 0
    assert _read(client, table) == []


def test_load_creates_a_missing_table_from_the_schema(
    client: bigquery.Client, dataset: str
) -> None:
    ref = f"{LOCAL_PROJECT}.{dataset}.created_by_load"
    load_rows(client, ref, [_row("a", T0)], schema=SCHEMA)
    assert [f.name for f in client.get_table(ref).schema] == [f.name for f in SCHEMA]
    with pytest.raises(ConfigError, match="no schema was given"):
        load_rows(client, f"{LOCAL_PROJECT}.{dataset}.never_made", [_row("a", T0)])


def test_bad_rows_are_refused_before_anything_is_written(
    client: bigquery.Client, table: str
) -> None:
    load_rows(client, table, [_row("a", T0)])
    with pytest.raises(BigQueryWriteError, match="`user_id` is REQUIRED"):
        load_rows(
            client, table, [_row("b", T0), {"valid_from": T0}], write_disposition="WRITE_TRUNCATE"
        )
    assert _read(client, table) == [_row("a", T0)]


def test_table_layout_is_kept_and_checked(client: bigquery.Client, table: str) -> None:
    live = client.get_table(table)
    assert live.time_partitioning.type_ == "DAY"
    assert live.time_partitioning.field == "valid_from"
    assert live.clustering_fields == ["user_id"]
    again = ensure_table(
        client, table, SCHEMA, partition_field="valid_from", clustering_fields=["user_id"]
    )
    assert again.reference == live.reference
    other = [*SCHEMA[:-1], bigquery.SchemaField("computed_at", "STRING")]
    with pytest.raises(ConfigError, match="exists with other columns"):
        ensure_table(client, table, other)


# -- replace_range ---------------------------------------------------------------------------


def _day_rows(tag: str) -> list[dict[str, Any]]:
    """Rows on day 1, on both edges of day 2, and on day 3."""
    return [
        _row("a", T0 + DAY - US, computed_at=T0, clicks=1, score=float(len(tag))),
        _row("a", T0 + DAY, computed_at=T0, clicks=2, embedding=[1.0]),
        _row("a", T0 + 2 * DAY - US, computed_at=T0, clicks=3),
        _row("a", T0 + 2 * DAY, computed_at=T0, clicks=4),
    ]


def test_replace_range_is_idempotent(client: bigquery.Client, table: str, dataset: str) -> None:
    load_rows(client, table, _day_rows("old"))
    new = [
        _row("a", T0 + DAY, clicks=20, computed_at=T0 + 3 * DAY),
        _row("b", T0 + DAY + US, clicks=21, embedding=[0.5, 0.25]),
    ]
    expected = sorted(
        [_day_rows("old")[0], *new, _day_rows("old")[3]],
        key=lambda r: (r["user_id"], r["valid_from"]),
    )
    for _ in range(2):
        written = replace_range(
            client, table, new, time_field="valid_from", start=T0 + DAY, end=T0 + 2 * DAY
        )
        assert written == 2
        assert _read(client, table) == expected
    assert _staging_tables(client, dataset) == []


def test_replace_range_with_no_rows_empties_the_range(client: bigquery.Client, table: str) -> None:
    load_rows(client, table, _day_rows("old"))
    assert (
        replace_range(client, table, [], time_field="valid_from", start=T0 + DAY, end=T0 + 2 * DAY)
        == 0
    )
    assert [r["clicks"] for r in _read(client, table)] == [1, 4]


def test_replace_range_refuses_rows_outside_and_changes_nothing(
    client: bigquery.Client, table: str
) -> None:
    load_rows(client, table, _day_rows("old"))
    before = _read(client, table)
    outside = [_row("a", T0 + 2 * DAY, clicks=99)]  # the end is excluded
    with pytest.raises(BigQueryWriteError, match=r"outside .* e\.g\. 2024-05-03 00:00:00"):
        replace_range(
            client, table, outside, time_field="valid_from", start=T0 + DAY, end=T0 + 2 * DAY
        )
    with pytest.raises(ConfigError, match="`score` is not a TIMESTAMP column"):
        replace_range(client, table, [], time_field="score", start=T0, end=T0 + DAY)
    assert _read(client, table) == before


# -- WriteToBigQueryClient -------------------------------------------------------------------


def _batch(user: str, start: datetime, count: int) -> pa.RecordBatch:
    table = pa.table(
        {
            "user_id": [user] * count,
            "valid_from": pa.array(
                [start + i * US for i in range(count)], pa.timestamp("us", tz="UTC")
            ),
            "score": pa.nulls(count, pa.float64()),
            "clicks": pa.array(range(count), pa.int64()),
            "embedding": pa.array([[float(i)] for i in range(count)], pa.list_(pa.float32())),
            "computed_at": pa.nulls(count, pa.timestamp("us", tz="UTC")),
        }
    )
    return table.to_batches()[0]


def _run(endpoint: str, table: str, elements: list[Any], **options: Any) -> None:
    with BeamTestPipeline() as pipeline:
        written = (
            pipeline
            | "Create" >> beam.Create(elements, reshuffle=False)
            | "Write"
            >> WriteToBigQueryClient(
                table, SCHEMA, project=LOCAL_PROJECT, endpoint=endpoint, **options
            )
        )
        expected = sum(e.num_rows if isinstance(e, pa.RecordBatch) else len(e) for e in elements)
        assert_that(written, equal_to([expected]))


def _as_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    return [
        _row(r["user_id"], r["valid_from"], clicks=r["clicks"], embedding=r["embedding"])
        for r in batch.to_pylist()
    ]


def test_beam_write_appends_batches_and_dict_rows(
    endpoint: str, client: bigquery.Client, table: str, dataset: str
) -> None:
    batches = [_batch("a", T0, 3), _batch("b", T0, 2)]
    dict_rows = [_row("c", T0 + DAY, clicks=7, embedding=[1.0, 2.0])]
    load_rows(client, table, [_row("z", T0)])
    _run(endpoint, table, [*batches, dict_rows], max_rows_per_load=2)
    expected = [r for b in batches for r in _as_rows(b)] + dict_rows + [_row("z", T0)]
    assert _read(client, table) == sorted(expected, key=lambda r: (r["user_id"], r["valid_from"]))
    assert _staging_tables(client, dataset) == []


def test_beam_write_truncate_with_no_input_empties_the_table(
    endpoint: str, client: bigquery.Client, table: str
) -> None:
    load_rows(client, table, [_row("z", T0)])
    _run(endpoint, table, [], write_disposition="WRITE_TRUNCATE")
    assert _read(client, table) == []


def test_beam_write_replaces_a_range_idempotently(
    endpoint: str, client: bigquery.Client, table: str
) -> None:
    load_rows(client, table, _day_rows("old"))
    window = TimeRange(field="valid_from", start=T0 + DAY, end=T0 + 2 * DAY)
    batch = _batch("b", T0 + DAY, 4)
    for _ in range(2):
        _run(endpoint, table, [batch], replace=window)
    kept = [_day_rows("old")[0], _day_rows("old")[3]]
    assert _read(client, table) == sorted(
        [*kept, *_as_rows(batch)], key=lambda r: (r["user_id"], r["valid_from"])
    )
