"""The Feast BigQuery adapter's pure parts: SQL scoping, patching, the clients' overrides.

No network: clients are built (which sends nothing) and their HTTP-facing methods are
replaced by recorders.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import feast.infra.offline_stores.bigquery as feast_bq
import google.auth
import pytest
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.bigquery_source import BigQuerySource
from google.api_core.exceptions import BadRequest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from common.bigquery_client import EmulatorClient, make_client
from feature_store.config import Endpoints, PlatformConfig
from feature_store.errors import ConfigError
from offline.feast_bigquery import (
    FeastEmulatorClient,
    configure_feast_bigquery,
    drop_temp_tables_sql,
    emulator_endpoint,
    restore_feast_bigquery,
    scope_temp_tables,
    use_bigquery_emulator,
)

ENDPOINT = "http://127.0.0.1:9050"
FEAST_FACTORY = feast_bq._get_bigquery_client
FEAST_COLUMN_TYPES = BigQuerySource.get_table_column_names_and_types


@pytest.fixture(autouse=True)
def _restore_feast() -> Iterator[None]:
    restore_feast_bigquery()
    yield
    restore_feast_bigquery()


def _context(name: str) -> offline_utils.FeatureViewQueryContext:
    return offline_utils.FeatureViewQueryContext(
        name=name,
        ttl=0,
        entities=["user_id"],
        features=["score"],
        field_mapping={},
        timestamp_field="valid_from",
        created_timestamp_column="computed_at",
        table_subquery="`local-project.features.entity_dataframe`",
        entity_selections=["user_id AS user_id"],
        min_event_timestamp=None,
        max_event_timestamp=datetime(2024, 1, 2, tzinfo=UTC).isoformat(),
        date_partition_column=None,
        timestamp_field_type=None,
    )


def _feast_point_in_time_sql(*views: str) -> str:
    """Feast's own point-in-time script, rendered as get_historical_features renders it."""
    return offline_utils.build_point_in_time_query(
        feature_view_query_contexts=[_context(v) for v in views],
        left_table_query_string="local-project.feast.feast_entity_df_0123",
        entity_df_event_timestamp_col="event_timestamp",
        entity_df_columns={"user_id": None, "event_timestamp": None}.keys(),
        query_template=feast_bq.MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN,
    )


def _standalone(name: str, sql: str) -> list[str]:
    return re.findall(rf"(?<![\w.]){name}(?!\w)", sql)


# -- scope_temp_tables on Feast's real SQL -------------------------------------------


def test_feast_script_temp_tables_all_get_the_suffix() -> None:
    sql = _feast_point_in_time_sql("user_stats", "user_embeddings")
    scoped, tables = scope_temp_tables(sql, "abc123")
    assert tables == [
        "entity_dataframe_abc123",
        "user_stats__cleaned_abc123",
        "user_embeddings__cleaned_abc123",
    ]
    for name in ("entity_dataframe", "user_stats__cleaned", "user_embeddings__cleaned"):
        assert _standalone(name, sql), f"{name} should be in Feast's SQL to begin with"
        assert not _standalone(name, scoped)
        assert len(_standalone(f"{name}_abc123", scoped)) == len(_standalone(name, sql))


def test_feast_script_keeps_permanent_tables_ctes_and_columns() -> None:
    sql = _feast_point_in_time_sql("user_stats")
    scoped, _ = scope_temp_tables(sql, "abc123")
    # The source table is named like a temp table but is a permanent, dotted one.
    assert "`local-project.features.entity_dataframe`" in scoped
    assert "`local-project.feast.feast_entity_df_0123`" in scoped
    # CTEs and columns that merely contain a temp table's name are left alone.
    assert scoped.count("user_stats__entity_dataframe") == sql.count("user_stats__entity_dataframe")
    assert scoped.count("user_stats__entity_row_unique_id") == sql.count(
        "user_stats__entity_row_unique_id"
    )


def test_scoping_changes_nothing_but_the_temp_names() -> None:
    sql = _feast_point_in_time_sql("user_stats")
    scoped, tables = scope_temp_tables(sql, "abc123")
    unscoped = scoped
    for table in tables:
        unscoped = unscoped.replace(table, table.removesuffix("_abc123"))
    assert unscoped == sql


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CREATE TEMP TABLE t AS (SELECT 1 AS x); SELECT * FROM t", "SELECT * FROM t_s"),
        ("create temporary table t as select 1 x; select t.x from t", "select t_s.x from t_s"),
        ("CREATE OR REPLACE TEMP TABLE `t` AS SELECT 1; SELECT * FROM `t`", "FROM `t_s`"),
        ("CREATE TEMP TABLE t AS SELECT 1 AS t2; SELECT a.t, t2 FROM t AS a", "a.t, t2 FROM t_s"),
    ],
)
def test_scope_temp_tables_cases(sql: str, expected: str) -> None:
    scoped, tables = scope_temp_tables(sql, "s")
    assert tables == ["t_s"]
    assert expected in scoped


def test_sql_without_temp_tables_is_unchanged() -> None:
    sql = "SELECT * FROM `p.d.entity_dataframe` WHERE entity_dataframe = 1"
    assert scope_temp_tables(sql, "s") == (sql, [])


def test_suffix_must_be_an_identifier_part() -> None:
    with pytest.raises(ValueError, match=r"'a-b'"):
        scope_temp_tables("SELECT 1", "a-b")


def test_drop_script_drops_each_table_if_it_exists() -> None:
    assert drop_temp_tables_sql(["a_s", "b_s"]) == (
        "DROP TABLE IF EXISTS a_s;\nDROP TABLE IF EXISTS b_s;"
    )


# -- Patching Feast ------------------------------------------------------------------


def test_nothing_is_patched_until_asked() -> None:
    assert feast_bq._get_bigquery_client is FEAST_FACTORY
    assert BigQuerySource.get_table_column_names_and_types is FEAST_COLUMN_TYPES
    assert emulator_endpoint() is None


def test_feast_gets_an_anonymous_emulator_client() -> None:
    use_bigquery_emulator(ENDPOINT + "/")
    client = feast_bq._get_bigquery_client(project="p1", location="EU")
    assert isinstance(client, FeastEmulatorClient)
    assert isinstance(client._credentials, AnonymousCredentials)
    assert client._connection.API_BASE_URL == ENDPOINT
    assert (client.project, client.location) == ("p1", "EU")
    assert emulator_endpoint() == ENDPOINT


def test_a_repo_without_project_id_gets_the_default_project() -> None:
    use_bigquery_emulator(ENDPOINT, default_project="fallback")
    assert feast_bq._get_bigquery_client(project=None).project == "fallback"


def test_use_is_idempotent_and_can_repoint() -> None:
    use_bigquery_emulator(ENDPOINT)
    factory = feast_bq._get_bigquery_client
    use_bigquery_emulator(ENDPOINT)
    assert feast_bq._get_bigquery_client is factory
    use_bigquery_emulator("http://localhost:9999")
    assert feast_bq._get_bigquery_client(project="p")._connection.API_BASE_URL == (
        "http://localhost:9999"
    )
    use_bigquery_emulator("http://localhost:9999", default_project="other")
    assert feast_bq._get_bigquery_client().project == "other"


def test_restore_brings_back_feast_as_shipped() -> None:
    use_bigquery_emulator(ENDPOINT)
    use_bigquery_emulator("http://localhost:9999")
    restore_feast_bigquery()
    assert feast_bq._get_bigquery_client is FEAST_FACTORY
    assert BigQuerySource.get_table_column_names_and_types is FEAST_COLUMN_TYPES
    assert emulator_endpoint() is None


@pytest.mark.parametrize(
    "endpoint", ["127.0.0.1:9050", "http://127.0.0.1", "ftp://h:1", "http://h:1/x"]
)
def test_bad_endpoints_are_refused_by_name(endpoint: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(endpoint))):
        use_bigquery_emulator(endpoint)
    assert feast_bq._get_bigquery_client is FEAST_FACTORY


def test_only_the_local_profile_is_pointed_at_the_emulator() -> None:
    local = PlatformConfig(endpoints=Endpoints(bigquery_port=9123))
    configure_feast_bigquery(local.for_project("real-project"))
    assert feast_bq._get_bigquery_client is FEAST_FACTORY
    configure_feast_bigquery(local)
    assert emulator_endpoint() == "http://127.0.0.1:9123"


def test_schema_inference_asks_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    use_bigquery_emulator(ENDPOINT)
    schema = [
        bigquery.SchemaField("user_id", "STRING"),
        bigquery.SchemaField("embedding", "FLOAT", mode="REPEATED"),
    ]
    asked: list[str] = []

    def get_table(self: bigquery.Client, table: str) -> bigquery.Table:
        asked.append(f"{type(self).__name__}:{table}")
        return bigquery.Table("p.d.t", schema=schema)

    monkeypatch.setattr(bigquery.Client, "get_table", get_table)
    source = BigQuerySource(name="s", table="p.d.t", timestamp_field="valid_from")
    config = type("Config", (), {"offline_store": feast_bq.BigQueryOfflineStoreConfig()})()
    assert list(source.get_table_column_names_and_types(config)) == [
        ("user_id", "STRING"),
        ("embedding", "ARRAY<FLOAT>"),
    ]
    assert asked == ["FeastEmulatorClient:p.d.t"]


# -- The clients' overrides ----------------------------------------------------------


def test_emulator_client_never_creates_a_storage_api_client() -> None:
    client = make_client("p", ENDPOINT)
    assert isinstance(client, EmulatorClient)
    assert client._ensure_bqstorage_client() is None


def test_production_client_is_the_library_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BIGQUERY_EMULATOR_HOST", raising=False)
    adc = AnonymousCredentials()  # stands in for application-default credentials
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (adc, "p"))
    client = make_client("p", None)
    assert type(client) is bigquery.Client
    assert client._credentials is adc
    assert client._connection.API_BASE_URL == "https://bigquery.googleapis.com"


def test_multipart_uploads_take_the_resumable_path(monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client("p", ENDPOINT)
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        client, "_do_resumable_upload", lambda *a, **k: calls.append((a, k)) or "response"
    )
    stream = object()
    assert client._do_multipart_upload(stream, {"m": 1}, 10, 3, 60, project="q") == "response"
    assert calls == [((stream, {"m": 1}, 3, 60), {"project": "q"})]


class _Job:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def result(self) -> list[Any]:
        if self.error:
            raise self.error
        return []


def _record_queries(monkeypatch: pytest.MonkeyPatch, first: _Job) -> list[str]:
    sent: list[str] = []

    def query(self: bigquery.Client, sql: str, job_config: Any = None, **_: Any) -> _Job:
        sent.append(sql)
        return first if len(sent) == 1 else _Job()

    monkeypatch.setattr(EmulatorClient, "query", query)
    return sent


def _feast_client() -> FeastEmulatorClient:
    return FeastEmulatorClient(
        project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": ENDPOINT}
    )


def test_scripts_temp_tables_are_dropped_after_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _record_queries(monkeypatch, _Job())
    job = _feast_client().query(_feast_point_in_time_sql("user_stats"))
    assert isinstance(job, _Job)
    script, drop = sent
    created = re.findall(r"CREATE TEMP TABLE (\w+)", script)
    assert len(created) == 2
    assert all(re.fullmatch(r"\w+_[0-9a-f]{16}", name) for name in created)
    assert drop == drop_temp_tables_sql(created)


def test_each_script_gets_its_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _record_queries(monkeypatch, _Job())
    client = _feast_client()
    client.query("CREATE TEMP TABLE t AS SELECT 1; SELECT * FROM t")
    client.query("CREATE TEMP TABLE t AS SELECT 1; SELECT * FROM t")
    assert sent[0] != sent[2]


def test_a_failed_script_still_drops_and_returns_its_job(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = _Job(BadRequest("boom"))
    sent = _record_queries(monkeypatch, failed)
    assert _feast_client().query("CREATE TEMP TABLE t AS SELECT 1; SELECT 1/0") is failed
    assert sent[1].startswith("DROP TABLE IF EXISTS t_")


def test_plain_queries_and_dry_runs_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _record_queries(monkeypatch, _Job())
    client = _feast_client()
    client.query("SELECT 1")
    dry = bigquery.QueryJobConfig(dry_run=True)
    client.query("CREATE TEMP TABLE t AS SELECT 1; SELECT * FROM t", job_config=dry)
    assert sent == ["SELECT 1", "CREATE TEMP TABLE t AS SELECT 1; SELECT * FROM t"]
