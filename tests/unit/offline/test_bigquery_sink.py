"""The BigQuery writer's pure parts: conforming rows, time ranges, SQL, argument checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from feature_store.errors import ConfigError
from offline.bigquery_rows import BigQueryWriteError, TimeRange, conform, timestamp_literal
from offline.bigquery_sink import (
    WriteToBigQueryClient,
    _check_layout,
    _StageBatchesFn,
    _Target,
    commit_script,
    table_id,
    table_sql,
)

UTC_US = pa.timestamp("us", tz="UTC")
SCHEMA = [
    bigquery.SchemaField("user_id", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("valid_from", "TIMESTAMP", mode="REQUIRED"),
    bigquery.SchemaField("score", "FLOAT64"),
    bigquery.SchemaField("count", "INT64"),
    bigquery.SchemaField("embedding", "FLOAT", mode="REPEATED"),
]
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _client() -> bigquery.Client:
    return bigquery.Client(project="proj", credentials=AnonymousCredentials())


def _rows() -> pa.Table:
    return pa.table(
        {
            "embedding": pa.array([[0.5, 0.25], None], pa.list_(pa.float32())),
            "count": pa.array([2**62 + 1, None], pa.int64()),
            "score": [0.1 + 0.2, None],
            "valid_from": pa.array([T0, T0 + timedelta(microseconds=1)], UTC_US),
            "user_id": ["a", "b"],
        }
    )


# -- conform ---------------------------------------------------------------------------


def test_conform_orders_and_types_columns_as_the_schema() -> None:
    table = conform(_rows(), SCHEMA)
    assert table.column_names == [f.name for f in SCHEMA]
    assert table.schema.field("embedding").type == pa.list_(pa.float64())
    assert table.schema.field("valid_from").type == UTC_US
    assert not table.schema.field("user_id").nullable
    assert table.to_pylist() == [
        {
            "user_id": "a",
            "valid_from": T0,
            "score": 0.1 + 0.2,
            "count": 2**62 + 1,
            "embedding": [0.5, 0.25],
        },
        {
            "user_id": "b",
            "valid_from": T0 + timedelta(microseconds=1),
            "score": None,
            "count": None,
            "embedding": [],  # a NULL array is an empty one in BigQuery
        },
    ]


def test_conform_takes_dataframes_with_nanosecond_utc_timestamps() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a"],
            "valid_from": pd.to_datetime(["2024-01-01 00:00:00.000001"], utc=True),
            "score": [np.nan],
            "count": pd.array([None], dtype="Int64"),
            "embedding": [np.array([1.0, 2.0], dtype=np.float32)],
        }
    )
    row = conform(frame, SCHEMA).to_pylist()[0]
    assert row["valid_from"] == T0 + timedelta(microseconds=1)
    assert row["score"] is None  # pandas' missing value, as in the DataFrame
    assert row["count"] is None
    assert row["embedding"] == [1.0, 2.0]


def test_conform_converts_other_timezones_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    rows = [{"user_id": "a", "valid_from": datetime(2024, 1, 1, 2, tzinfo=plus_two)}]
    assert conform(rows, SCHEMA).column("valid_from")[0].as_py() == T0


def test_conform_takes_dict_rows_with_absent_nullable_columns() -> None:
    table = conform([{"user_id": "a", "valid_from": T0, "embedding": [1, 2]}], SCHEMA)
    assert table.to_pylist()[0] == {
        "user_id": "a",
        "valid_from": T0,
        "score": None,
        "count": None,
        "embedding": [1.0, 2.0],
    }


def test_conform_takes_record_batches() -> None:
    batch = conform(_rows(), SCHEMA).to_batches()[0]
    assert conform(batch, SCHEMA).num_rows == 2


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (_rows().drop_columns(["score"]), r"missing \['score'\]"),
        (_rows().append_column("extra", pa.array([1, 2])), r"unexpected \['extra'\]"),
        (
            _rows().set_column(3, "valid_from", pa.array([T0, T0], pa.timestamp("us"))),
            r"`valid_from` must hold timezone-aware timestamps, got timestamp\[us\]",
        ),
        (
            _rows().set_column(3, "valid_from", pa.array([1, 2], pa.int64())),
            r"`valid_from` must hold timezone-aware timestamps, got int64",
        ),
        (
            _rows().set_column(3, "valid_from", pa.array(["2024-01-01", "2024-01-02"])),
            r"`valid_from` must hold timezone-aware timestamps, got string",
        ),
        (
            _rows().set_column(
                3, "valid_from", pa.array([1, 1_000_000_000_000_000_001], pa.timestamp("ns", "UTC"))
            ),
            r"`valid_from` of type timestamp\[ns, tz=UTC\] does not convert",
        ),
        (
            _rows().set_column(4, "user_id", pa.array(["a", None])),
            r"`user_id` is REQUIRED but 1 row\(s\) are NULL",
        ),
        (
            _rows().set_column(0, "embedding", pa.array([[1.0, None], []], pa.list_(pa.float64()))),
            r"REPEATED `embedding` has 1 NULL element",
        ),
        (
            _rows().set_column(1, "count", pa.array([1.5, 2.0])),
            r"`count` of type double does not convert to int64",
        ),
        (
            [{"user_id": "a", "valid_from": datetime(2024, 1, 1)}],  # noqa: DTZ001 - on purpose
            r"`valid_from` must be a timezone-aware datetime, got naive 2024-01-01T00:00:00",
        ),
        ([{"user_id": "a", "valid_from": T0, "typo": 1}], r"lacks: \['typo'\]"),
        ([{"user_id": "a", "valid_from": T0, "count": "x"}], r"do not convert"),
    ],
)
def test_conform_refuses_rows_naming_the_problem(rows: object, message: str) -> None:
    with pytest.raises(BigQueryWriteError, match=message):
        conform(rows, SCHEMA)  # type: ignore[arg-type]


def test_unsupported_column_types_are_named() -> None:
    with pytest.raises(ConfigError, match="`r` has BigQuery type RECORD"):
        conform([], [bigquery.SchemaField("r", "RECORD")])


# -- time ranges and SQL ---------------------------------------------------------------


def test_timestamp_literal_is_utc_to_the_microsecond() -> None:
    moment = datetime(2024, 1, 1, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=1)))
    assert timestamp_literal(moment) == "TIMESTAMP '2024-01-01 00:02:03.000004+00:00'"


def test_time_range_predicate_is_half_open() -> None:
    window = TimeRange(field="valid_from", start=T0, end=T0 + timedelta(days=1))
    assert window.where_sql() == (
        "`valid_from` >= TIMESTAMP '2024-01-01 00:00:00.000000+00:00' AND "
        "`valid_from` < TIMESTAMP '2024-01-02 00:00:00.000000+00:00'"
    )


def test_time_range_check_finds_rows_outside() -> None:
    table = conform(_rows(), SCHEMA)
    TimeRange(field="valid_from", start=T0, end=T0 + timedelta(microseconds=2)).check(table)
    tight = TimeRange(field="valid_from", start=T0, end=T0 + timedelta(microseconds=1))
    with pytest.raises(
        BigQueryWriteError, match=r"1 row\(s\) .* e\.g\. 2024-01-01 00:00:00\.000001"
    ):
        tight.check(table)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (T0, T0, "start < end"),
        (T0.replace(tzinfo=None), T0 + timedelta(1), "start must be timezone-aware"),
        (T0, (T0 + timedelta(1)).replace(tzinfo=None), "end must be timezone-aware"),
    ],
)
def test_time_range_refuses_bad_bounds(start: datetime, end: datetime, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TimeRange(field="valid_from", start=start, end=end)


def test_time_range_field_must_be_an_identifier() -> None:
    with pytest.raises(ConfigError, match="'a; DROP'"):
        TimeRange(field="a; DROP", start=T0, end=T0 + timedelta(1))


def test_commit_script_is_one_transaction() -> None:
    script = commit_script("`p.d.t`", ["`p.d.s1`", "`p.d.s2`"], ["a", "b"], delete_where="TRUE")
    assert script == (
        "BEGIN TRANSACTION;\n"
        "DELETE FROM `p.d.t` WHERE TRUE;\n"
        "INSERT INTO `p.d.t` (`a`, `b`)\n"
        "SELECT `a`, `b` FROM `p.d.s1`\nUNION ALL\nSELECT `a`, `b` FROM `p.d.s2`;\n"
        "COMMIT TRANSACTION;"
    )


def test_commit_script_without_rows_only_deletes() -> None:
    assert commit_script("`t`", [], ["a"], delete_where="x") == (
        "BEGIN TRANSACTION;\nDELETE FROM `t` WHERE x;\nCOMMIT TRANSACTION;"
    )


def test_table_references_are_qualified_and_checked() -> None:
    client = _client()
    assert table_id(client, "ds.t") == "proj.ds.t"
    assert table_sql(client, "other-proj.ds.t") == "`other-proj.ds.t`"
    for bad in ("t", "ds.t`; DROP", "a.b.c.d"):
        with pytest.raises(ConfigError, match=re.escape("[project.]dataset.table")):
            table_id(client, bad)


# -- layout and transform arguments ----------------------------------------------------


@pytest.mark.parametrize(
    ("partition", "clustering", "message"),
    [
        ("score", (), "partition field must be a TIMESTAMP or DATE column, got 'score'"),
        ("nope", (), "got 'nope'"),
        (None, ("embedding",), "non-repeated clusterable column, got 'embedding'"),
        (None, ("score",), "got 'score'"),
        (None, ("user_id",) * 5, "at most 4 columns"),
    ],
)
def test_layouts_bigquery_refuses_are_refused(
    partition: str | None, clustering: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _check_layout(SCHEMA, partition, clustering)


def test_the_change_point_layout_is_accepted() -> None:
    _check_layout(SCHEMA, "valid_from", ("user_id",))


def test_write_transform_checks_its_arguments() -> None:
    window = TimeRange(field="valid_from", start=T0, end=T0 + timedelta(1))
    with pytest.raises(ConfigError, match="WRITE_EMPTY"):
        WriteToBigQueryClient("d.t", SCHEMA, project="p", write_disposition="WRITE_EMPTY")
    with pytest.raises(ConfigError, match="already says what is deleted"):
        WriteToBigQueryClient(
            "d.t", SCHEMA, project="p", write_disposition="WRITE_TRUNCATE", replace=window
        )
    with pytest.raises(ConfigError, match="got 0"):
        WriteToBigQueryClient("d.t", SCHEMA, project="p", max_rows_per_load=0)


def _target(**options: object) -> _Target:
    settings: dict[str, object] = {
        "project": "p",
        "endpoint": None,
        "table_ref": "d.t",
        "schema": tuple(SCHEMA),
        "write_disposition": "WRITE_APPEND",
        "replace": None,
    }
    return _Target(**{**settings, **options})  # type: ignore[arg-type]


def test_each_write_mode_deletes_what_it_replaces() -> None:
    window = TimeRange(field="valid_from", start=T0, end=T0 + timedelta(1))
    assert _target().delete_where() is None
    assert _target(write_disposition="WRITE_TRUNCATE").delete_where() == "TRUE"
    assert _target(replace=window).delete_where() == window.where_sql()


@pytest.mark.parametrize("element", ["oops", 42, b"x"])
def test_write_fn_refuses_what_is_not_rows(element: object) -> None:
    fn = _StageBatchesFn(_target(), max_rows_per_load=10)
    fn.start_bundle()
    with pytest.raises(BigQueryWriteError, match=f"cannot write a {type(element).__name__}"):
        list(fn.process(element))
