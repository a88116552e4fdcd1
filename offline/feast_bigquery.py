"""Run Feast's own BigQuery offline store against the local BigQuery emulator.

Feast 0.67's BigQuery offline store has no endpoint or credentials option: every client
it uses comes from `feast.infra.offline_stores.bigquery._get_bigquery_client`, which
builds a `bigquery.Client` from application-default credentials. In the local profile
`use_bigquery_emulator(endpoint)` points that store at the emulator; Feast's SQL (the
point-in-time join of `get_historical_features`, the `ROW_NUMBER()` dedup of
`pull_latest_from_table_or_query` used by `materialize`) is run unchanged. Nothing is
patched until it is called, so production (real BigQuery) runs Feast as shipped.

The adaptations, each with its root cause:

1. Feast's client factory `_get_bigquery_client` is replaced by one returning an
   `common.bigquery_client.EmulatorClient` (anonymous credentials,
   `client_options={"api_endpoint": endpoint}`). Feast calls the factory by its module
   global name on every query, so replacing the global reaches every call site.
2. Dataframe uploads (`_upload_entity_df` -> `load_table_from_dataframe`) go through the
   resumable upload: the client library labels the media part of its multipart upload
   `*/*` and the emulator rejects that (400). Done by `EmulatorClient`.
3. Reads go over REST: `BigQueryRetrievalJob` asks for a BigQuery Storage API client
   (`to_dataframe(create_bqstorage_client=True)`, `to_arrow()`), a gRPC service at
   `bigquerystorage.googleapis.com` that `api_endpoint` does not move. Done by
   `EmulatorClient`, which never creates one.
4. Temporary tables are scoped to their script. Feast's point-in-time SQL
   (`MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN`) is one script that starts with
   `CREATE TEMP TABLE entity_dataframe` and `CREATE TEMP TABLE <view>__cleaned`. In
   BigQuery these die with the script. The emulator runs every job on one shared DuckDB
   connection and turns them into DuckDB `TEMPORARY` tables, which live as long as the
   connection, i.e. the emulator process; its script interpreter cleans up TEMP
   functions only. So the second `get_historical_features` fails with
   `409 Already Exists: Table ...entity_dataframe` (DuckDB's "Table with name
   entity_dataframe already exists", mapped by the emulator's error mapper), and two
   concurrent ones would read each other's rows. The client Feast gets here gives each
   script's temporary tables a unique suffix (`scope_temp_tables`), waits for the script
   and drops them. The script's result is unaffected: the emulator keeps a query's
   result as its own Arrow table, not as a view of the temporary tables.
5. Schema inference (`FeatureStore.apply` of a FeatureView without a schema) calls
   `BigQuerySource.get_table_column_names_and_types`, which builds its own
   `bigquery.Client` with default credentials instead of asking the factory. It is
   replaced by a short equivalent that does ask the factory.

Everything else in Feast's SQL runs as is on the emulator: `CREATE TEMP TABLE ... AS`,
`CONCAT(CAST(ts AS STRING))` row ids (microseconds kept), `TIMESTAMP_SUB(..., INTERVAL n
SECOND)` for a TTL, string literals compared with TIMESTAMP columns, `ROW_NUMBER() OVER`,
`JOIN ... USING`, an entity dataframe given as SQL (`CREATE TABLE ... AS`), and the
expiry Feast sets on its uploaded entity table.

Not adapted, because they cannot work on the emulator without rewriting Feast:
`RetrievalJob.to_bigquery()` and `persist()` (saved datasets). Feast reads the script's
anonymous destination table from the job and runs `CREATE TABLE ... AS SELECT * FROM` it.
It clears `job_config.destination` to None first, which sends `"destinationTable": null`;
the emulator fills that slot with `dict.setdefault`, which keeps the null, so Feast fails
with `TypeError: 'NoneType' object is not subscriptable`. Even with the slot filled, the
emulator's anonymous result tables (`_bqemu_anonymous.anon<job>`) can be read through
`tables.get` but not from SQL (404 "Dataset _bqemu_anonymous was not found"). Locally,
use `to_arrow()` and write the result with `offline.bigquery_sink.load_rows`.
`BigQuerySource.validate` (used by Feast's offline server and its mlflow command) also
builds a default client and is left alone.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import feast.infra.offline_stores.bigquery as feast_bq
from feast.infra.offline_stores.bigquery_source import BigQuerySource
from feast.repo_config import RepoConfig
from google.api_core.exceptions import GoogleAPIError
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from typing_extensions import override

from common.bigquery_client import EmulatorClient, validate_endpoint
from feature_store.config import LOCAL_PROJECT, PlatformConfig

logger = logging.getLogger(__name__)

_TEMP_TABLE = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"`?([A-Za-z_][A-Za-z0-9_]*)`?",
    re.IGNORECASE,
)

_lock = threading.Lock()
_originals: dict[str, Any] = {}
_target: tuple[str, str] | None = None  # (endpoint, default project) Feast is pointed at


def scope_temp_tables(sql: str, suffix: str) -> tuple[str, list[str]]:
    """Rename every temporary table a script creates to `<name>_<suffix>`.

    Returns the new SQL and the new names. A name is renamed wherever it stands as a
    table name or a qualifier (`FROM entity_dataframe`, `entity_dataframe.col`), not
    where it is the last part of a dotted path (`alias.entity_dataframe` is a column,
    `` `p.d.entity_dataframe` `` a permanent table) or part of a longer identifier.
    """
    if not re.fullmatch(r"[A-Za-z0-9_]+", suffix):
        msg = f"temporary table suffix must be letters, digits or _, got {suffix!r}"
        raise ValueError(msg)
    names = list(dict.fromkeys(_TEMP_TABLE.findall(sql)))
    for name in names:
        sql = re.sub(rf"(?<![\w.]){re.escape(name)}(?!\w)", f"{name}_{suffix}", sql)
    return sql, [f"{name}_{suffix}" for name in names]


def drop_temp_tables_sql(names: Iterable[str]) -> str:
    """One script dropping the given (already suffixed) temporary tables."""
    return "\n".join(f"DROP TABLE IF EXISTS {name};" for name in names)


class FeastEmulatorClient(EmulatorClient):
    """The emulator client Feast gets: scripts' temporary tables die with the script."""

    @override
    def query(  # type: ignore[override]
        self,
        query: str,
        job_config: bigquery.QueryJobConfig | None = None,
        **kwargs: Any,
    ) -> bigquery.QueryJob:
        if job_config is not None and job_config.dry_run:
            return super().query(query, job_config=job_config, **kwargs)
        scoped, tables = scope_temp_tables(query, uuid.uuid4().hex[:16])
        job = super().query(scoped, job_config=job_config, **kwargs)
        if tables:
            self._wait_then_drop(job, tables)
        return job

    def _wait_then_drop(self, job: bigquery.QueryJob, tables: list[str]) -> None:
        try:
            job.result()
        except GoogleAPIError as exc:
            # The caller reads the failure from the job itself (Feast: block_until_done).
            logger.debug("script %s failed before its temp tables were dropped: %s", job, exc)
        finally:
            try:
                super().query(drop_temp_tables_sql(tables)).result()
            except GoogleAPIError:
                logger.warning("could not drop emulator temp tables %s", tables, exc_info=True)


def _client_factory(endpoint: str, default_project: str) -> Callable[..., bigquery.Client]:
    def get_bigquery_client(
        project: str | None = None, location: str | None = None, data_source: Any = None
    ) -> bigquery.Client:
        del data_source  # a ConnectionRef's service account means nothing to the emulator
        return FeastEmulatorClient(
            project=project or default_project,
            location=location,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )

    return get_bigquery_client


def _column_names_and_types(source: BigQuerySource, config: RepoConfig) -> list[tuple[str, str]]:
    """`BigQuerySource.get_table_column_names_and_types`, with the client from the factory."""
    store = config.offline_store
    client = feast_bq._get_bigquery_client(
        project=store.billing_project_id or store.project_id, location=store.location
    )
    if source.query:
        schema = client.query(f"SELECT * FROM ({source.query}) LIMIT 0").result().schema
    else:
        schema = client.get_table(source.table).schema
    return [
        (f.name, f"ARRAY<{f.field_type}>" if f.mode == "REPEATED" else f.field_type) for f in schema
    ]


def use_bigquery_emulator(endpoint: str, *, default_project: str = LOCAL_PROJECT) -> None:
    """Point Feast's BigQuery offline store at the emulator at `endpoint` (idempotent).

    A second call with another endpoint re-points it. `default_project` is used when the
    Feast repo names no `project_id` (Feast would otherwise ask the environment).
    """
    global _target  # noqa: PLW0603 - the one piece of process state this module owns
    endpoint = validate_endpoint(endpoint)
    with _lock:
        if _target == (endpoint, default_project):
            return
        _originals.setdefault("client_factory", feast_bq._get_bigquery_client)
        _originals.setdefault("column_types", BigQuerySource.get_table_column_names_and_types)
        feast_bq._get_bigquery_client = _client_factory(endpoint, default_project)
        BigQuerySource.get_table_column_names_and_types = _column_names_and_types  # type: ignore[method-assign,assignment]
        _target = (endpoint, default_project)
    logger.info("Feast's BigQuery offline store now uses the emulator at %s", endpoint)


def restore_feast_bigquery() -> None:
    """Undo `use_bigquery_emulator`: Feast talks to real BigQuery again (idempotent)."""
    global _target  # noqa: PLW0603
    with _lock:
        if "client_factory" in _originals:
            feast_bq._get_bigquery_client = _originals.pop("client_factory")
        if "column_types" in _originals:
            BigQuerySource.get_table_column_names_and_types = _originals.pop("column_types")  # type: ignore[method-assign]
        _target = None


def emulator_endpoint() -> str | None:
    """The endpoint Feast's BigQuery offline store is pointed at, or None for BigQuery."""
    return _target[0] if _target else None


def configure_feast_bigquery(config: PlatformConfig) -> None:
    """In the local profile point Feast at the emulator; in production change nothing."""
    if config.local:
        use_bigquery_emulator(config.endpoints.bigquery, default_project=config.project)
