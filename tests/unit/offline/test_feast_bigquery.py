"""The emulator-bound Feast offline store's pure parts: SQL scoping, the store type,
the clients' overrides.

No network: clients are built (which sends nothing) and their HTTP-facing methods are
replaced by recorders.
"""

from __future__ import annotations

import importlib.metadata
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feast.infra.offline_stores.bigquery as feast_bq
import google.auth
import pytest
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.bigquery_source import BigQuerySource
from feast.infra.offline_stores.offline_utils import get_offline_store_from_config
from feast.repo_config import RepoConfig
from google.api_core.exceptions import BadRequest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from common.bigquery_client import EmulatorClient, make_client
from feature_store.config import LOCAL_PROJECT
from feature_store.errors import ConfigError
from offline.feast_bigquery import (
    DEFAULT_ENDPOINT,
    FEAST_VERSION,
    STORE_TYPE,
    EmulatorBigQueryOfflineStore,
    EmulatorBigQueryOfflineStoreConfig,
    FeastEmulatorClient,
    FeastVersionError,
    _feast_method,
    drop_temp_tables_sql,
    scope_temp_tables,
)

ENDPOINT = "http://127.0.0.1:9050"
FEAST_FACTORY = feast_bq._get_bigquery_client
FEAST_COLUMN_TYPES = BigQuerySource.get_table_column_names_and_types
FEAST_PULL_LATEST = feast_bq.BigQueryOfflineStore.pull_latest_from_table_or_query


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


# -- The store type: Feast's code, the emulator's client, nothing patched --------------


def _repo_config(offline_store: dict[str, Any]) -> RepoConfig:
    return RepoConfig(
        project="p",
        registry="registry.db",
        provider="local",
        online_store={"type": "sqlite"},
        offline_store=offline_store,
        entity_key_serialization_version=3,
    )


LOCAL = {"type": STORE_TYPE, "endpoint": ENDPOINT, "project_id": "p1", "location": "EU"}


def test_pinned_to_the_feast_version_it_was_checked_against() -> None:
    """Fails loudly on another Feast: re-check every adaptation in the module docstring
    (and the integration tests) before moving the pin."""
    assert importlib.metadata.version("feast") == FEAST_VERSION
    pyproject = (Path(__file__).parents[3] / "pyproject.toml").read_text()
    assert f'"feast[redis,gcp]=={FEAST_VERSION}"' in pyproject


def test_feast_loads_the_store_and_its_config_from_the_type() -> None:
    config = _repo_config(LOCAL)
    assert type(config.offline_store) is EmulatorBigQueryOfflineStoreConfig
    assert isinstance(config.offline_store, feast_bq.BigQueryOfflineStoreConfig)
    assert config.offline_store.endpoint == ENDPOINT
    store = get_offline_store_from_config(config.offline_store)
    assert type(store) is EmulatorBigQueryOfflineStore
    assert isinstance(store, feast_bq.BigQueryOfflineStore)


@pytest.mark.parametrize(
    "endpoint", ["127.0.0.1:9050", "http://127.0.0.1", "ftp://h:1", "http://h:1/x"]
)
def test_bad_endpoints_are_refused_by_name(endpoint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(endpoint))):
        _repo_config({**LOCAL, "endpoint": endpoint})


def test_a_trailing_slash_is_dropped() -> None:
    assert _repo_config({**LOCAL, "endpoint": ENDPOINT + "/"}).offline_store.endpoint == ENDPOINT


def test_the_store_refuses_another_stores_config() -> None:
    config = _repo_config({"type": "bigquery", "project_id": "p1"})
    source = BigQuerySource(name="s", table="p.d.t", timestamp_field="valid_from")
    with pytest.raises(ConfigError, match="'bigquery'"):
        EmulatorBigQueryOfflineStore.pull_all_from_table_or_query(
            config, source, ["user_id"], ["score"], "valid_from"
        )


def _pull_latest(store: type[feast_bq.BigQueryOfflineStore], config: RepoConfig) -> Any:
    source = BigQuerySource(
        name="s", table="p1.d.t", timestamp_field="valid_from", created_timestamp_column="c"
    )
    return store.pull_latest_from_table_or_query(
        config,
        source,
        ["user_id"],
        ["score"],
        "valid_from",
        "c",
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 2, tzinfo=UTC),
    )


def test_feasts_own_sql_runs_with_an_emulator_client(monkeypatch: pytest.MonkeyPatch) -> None:
    job = _pull_latest(EmulatorBigQueryOfflineStore, _repo_config(LOCAL))
    assert isinstance(job, feast_bq.BigQueryRetrievalJob)
    assert isinstance(job.client, FeastEmulatorClient)
    assert isinstance(job.client._credentials, AnonymousCredentials)
    assert job.client._connection.API_BASE_URL == ENDPOINT
    assert (job.client.project, job.client.location) == ("p1", "EU")
    # Feast's own store, with stand-in default credentials, renders the same SQL.
    adc = AnonymousCredentials()
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (adc, "p1"))
    plain = _pull_latest(feast_bq.BigQueryOfflineStore, _repo_config(LOCAL))
    assert type(plain.client) is bigquery.Client
    assert job.to_sql() == plain.to_sql()
    assert "ROW_NUMBER() OVER(PARTITION BY `user_id`" in job.to_sql()


def test_nothing_of_feasts_is_changed() -> None:
    _pull_latest(EmulatorBigQueryOfflineStore, _repo_config(LOCAL))
    assert feast_bq._get_bigquery_client is FEAST_FACTORY
    assert feast_bq.BigQueryOfflineStore.pull_latest_from_table_or_query is FEAST_PULL_LATEST
    assert BigQuerySource.get_table_column_names_and_types is FEAST_COLUMN_TYPES


def test_a_repo_without_project_id_gets_the_local_project() -> None:
    job = _pull_latest(EmulatorBigQueryOfflineStore, _repo_config({"type": STORE_TYPE}))
    assert job.client.project == LOCAL_PROJECT
    assert job.client._connection.API_BASE_URL == DEFAULT_ENDPOINT


@pytest.mark.parametrize(
    "name",
    [
        "pull_latest_from_table_or_query",
        "pull_all_from_table_or_query",
        "get_historical_features",
        "offline_write_batch",
        "write_logged_features",
    ],
)
def test_every_overridden_method_is_feasts_code(name: str) -> None:
    rebound = _feast_method(name, ENDPOINT)
    original = getattr(feast_bq.BigQueryOfflineStore, name)
    assert rebound.__code__ is original.__code__
    assert rebound.__globals__ is not feast_bq.__dict__
    client = rebound.__globals__["_get_bigquery_client"](project="q", location=None)
    assert isinstance(client, FeastEmulatorClient)
    assert name in vars(EmulatorBigQueryOfflineStore)


def test_a_feast_method_that_stops_asking_for_a_client_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def pull_all_from_table_or_query(*args: Any) -> None:
        del args

    monkeypatch.setattr(
        feast_bq.BigQueryOfflineStore,
        "pull_all_from_table_or_query",
        staticmethod(pull_all_from_table_or_query),
    )
    _feast_method.cache_clear()
    try:
        with pytest.raises(FeastVersionError, match=r"pull_all_from_table_or_query.*0\.67\.0"):
            _feast_method("pull_all_from_table_or_query", "http://127.0.0.1:1")
    finally:
        _feast_method.cache_clear()


def test_schema_inference_uses_the_emulator_client(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = [
        bigquery.SchemaField("user_id", "STRING"),
        bigquery.SchemaField("embedding", "FLOAT", mode="REPEATED"),
    ]
    asked: list[str] = []

    def get_table(self: bigquery.Client, table: str) -> bigquery.Table:
        asked.append(f"{type(self).__name__}@{self._connection.API_BASE_URL}:{table}")
        return bigquery.Table("p.d.t", schema=schema)

    monkeypatch.setattr(bigquery.Client, "get_table", get_table)
    source = BigQuerySource(name="s", table="p.d.t", timestamp_field="valid_from")
    store = EmulatorBigQueryOfflineStore()
    assert list(
        store.get_table_column_names_and_types_from_data_source(_repo_config(LOCAL), source)
    ) == [("user_id", "STRING"), ("embedding", "ARRAY<FLOAT>")]
    assert asked == [f"FeastEmulatorClient@{ENDPOINT}:p.d.t"]


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
