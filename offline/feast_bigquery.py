"""Feast's BigQuery offline store, as a store type of its own that targets the emulator.

The local repo's `feature_store.yaml` names this store by its class path:

    offline_store:
      type: offline.feast_bigquery.EmulatorBigQueryOfflineStore
      endpoint: http://127.0.0.1:9050
      project_id: local-project
      dataset: features

so the Feast SDK, the `feast` CLI and a notebook doing `FeatureStore(repo_path=...)`
read history from the emulator with no project import and nothing patched: Feast loads
the class (and `EmulatorBigQueryOfflineStoreConfig`) from the type, as it loads any
custom store. The production repo names Feast's own `bigquery` store.

Pinned to Feast 0.67.0 (`FEAST_VERSION`, checked by its unit test). Feast's BigQuery
store has no endpoint or credentials option: every method gets its client from the
module function `feast.infra.offline_stores.bigquery._get_bigquery_client`, which
builds a `bigquery.Client` from application-default credentials. This store runs
Feast's own method bodies (the point-in-time SQL of `get_historical_features`, the
`ROW_NUMBER()` dedup of `pull_latest_from_table_or_query` that `materialize` uses,
unchanged) with that one name bound, in a private copy of the module's namespace, to a
factory of emulator clients. Feast's module itself is not touched, so any other store
in the process (a production repo next to a local one) runs Feast as shipped.

The adaptations, each with its root cause, all in this module:

1. The client: `FeastEmulatorClient` (anonymous credentials,
   `client_options={"api_endpoint": endpoint}`), built per call as Feast builds its own.
2. Dataframe uploads (`_upload_entity_df` -> `load_table_from_dataframe`) go through the
   resumable upload: the client library labels the media part of its multipart upload
   `*/*` and the emulator rejects that (400). Done by `common.bigquery_client.EmulatorClient`.
3. Reads go over REST: `BigQueryRetrievalJob` asks for a BigQuery Storage API client
   (`to_dataframe(create_bqstorage_client=True)`, `to_arrow()`), a gRPC service at
   `bigquerystorage.googleapis.com` that `api_endpoint` does not move. Done by
   `EmulatorClient`, which never creates one.
4. Temporary tables are scoped to their script. Feast's point-in-time SQL
   (`MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN`) is one script that starts with
   `CREATE TEMP TABLE entity_dataframe` and `CREATE TEMP TABLE <view>__cleaned`. In
   BigQuery these die with the script. The emulator runs every job on one shared DuckDB
   connection and turns them into DuckDB `TEMPORARY` tables, which live as long as the
   connection, i.e. the emulator process. So the second `get_historical_features`
   fails with `409 Already Exists: Table ...entity_dataframe`, and two concurrent ones
   would read each other's rows. `FeastEmulatorClient` gives each script's temporary
   tables a unique suffix (`scope_temp_tables`), waits for the script and drops them.
   The script's result is unaffected: the emulator keeps a query's result as its own
   Arrow table, not as a view of the temporary tables.
5. Schema inference (`apply` of a FeatureView without a schema) goes through
   `get_table_column_names_and_types_from_data_source`, which Feast's base class answers
   with `BigQuerySource.get_table_column_names_and_types`, a method that builds its own
   default-credentials client. This store answers it with the emulator client.

Not adapted, because they cannot work on the emulator without rewriting Feast:
`RetrievalJob.to_bigquery()` and `persist()` (saved datasets). Feast reads the script's
anonymous destination table from the job and runs `CREATE TABLE ... AS SELECT * FROM` it.
It clears `job_config.destination` to None first, which sends `"destinationTable": null`;
the emulator fills that slot with `dict.setdefault`, which keeps the null, so Feast fails
with `TypeError: 'NoneType' object is not subscriptable`. Locally, use `to_arrow()` or
`to_df()`. The monitoring methods and `BigQuerySource.validate` (Feast's offline server)
also build default clients and are left alone.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
import types
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import feast.infra.offline_stores.bigquery as feast_bq
import pandas as pd
import pyarrow
from feast.data_source import DataSource
from feast.feature_logging import LoggingConfig, LoggingSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.bigquery import BigQueryOfflineStore, BigQueryOfflineStoreConfig
from feast.infra.offline_stores.bigquery_source import BigQuerySource
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import RepoConfig
from google.api_core.exceptions import GoogleAPIError
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from pydantic import StrictStr, field_validator
from typing_extensions import override

from common.bigquery_client import EmulatorClient, validate_endpoint
from feature_store.config import LOCAL_PROJECT
from feature_store.errors import ConfigError

logger = logging.getLogger(__name__)

FEAST_VERSION = "0.67.0"
STORE_TYPE = "offline.feast_bigquery.EmulatorBigQueryOfflineStore"
DEFAULT_ENDPOINT = "http://127.0.0.1:9050"
_FACTORY = "_get_bigquery_client"  # the one name Feast's methods are run with rebound

_TEMP_TABLE = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"`?([A-Za-z_][A-Za-z0-9_]*)`?",
    re.IGNORECASE,
)


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


class FeastVersionError(ConfigError):
    """The installed Feast is not the one this store's adaptations were checked against."""


class EmulatorBigQueryOfflineStoreConfig(BigQueryOfflineStoreConfig):
    """Feast's BigQuery offline store config, plus the emulator's REST endpoint."""

    type: Literal["offline.feast_bigquery.EmulatorBigQueryOfflineStore"] = STORE_TYPE  # type: ignore[assignment]
    """Offline store type selector: this class's dotted path."""

    endpoint: StrictStr = DEFAULT_ENDPOINT
    """The BigQuery emulator's REST endpoint, `http://host:port`."""

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, value: str) -> str:
        return validate_endpoint(value)


def emulator_client(
    endpoint: str, project: str | None = None, location: str | None = None
) -> FeastEmulatorClient:
    """The client every call of the store uses (a repo without `project_id` gets the
    local project: Feast would otherwise ask the environment)."""
    return FeastEmulatorClient(
        project=project or LOCAL_PROJECT,
        location=location,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": validate_endpoint(endpoint)},
    )


def _client_factory(endpoint: str) -> Callable[..., bigquery.Client]:
    """A stand-in for Feast's `_get_bigquery_client(project, location, data_source)`."""

    def get_bigquery_client(
        project: str | None = None, location: str | None = None, data_source: Any = None
    ) -> bigquery.Client:
        del data_source  # a ConnectionRef's service account means nothing to the emulator
        return emulator_client(endpoint, project, location)

    return get_bigquery_client


@functools.cache
def _feast_namespace(endpoint: str) -> dict[str, Any]:
    """A copy of Feast's BigQuery module namespace, its client factory the emulator's.
    Feast's module itself is left as it is."""
    namespace = dict(vars(feast_bq))
    namespace[_FACTORY] = _client_factory(endpoint)
    return namespace


@functools.cache
def _feast_method(name: str, endpoint: str) -> Callable[..., Any]:
    """Feast's `BigQueryOfflineStore.<name>`, its code and defaults unchanged, run in a
    copy of its module's namespace where `_get_bigquery_client` builds emulator clients."""
    function = getattr(BigQueryOfflineStore, name)
    if _FACTORY not in function.__code__.co_names:
        msg = (
            f"Feast's BigQueryOfflineStore.{name} no longer calls {_FACTORY} "
            f"(Feast {importlib.metadata.version('feast')}); this store "
            f"was checked against Feast {FEAST_VERSION}"
        )
        raise FeastVersionError(msg)
    rebound = types.FunctionType(
        function.__code__,
        _feast_namespace(endpoint),
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    rebound.__kwdefaults__ = function.__kwdefaults__
    return rebound


def _endpoint(config: RepoConfig) -> str:
    store = config.offline_store
    if not isinstance(store, EmulatorBigQueryOfflineStoreConfig):
        msg = f"offline store {store.type!r} is not {STORE_TYPE!r}"
        raise ConfigError(msg)
    return store.endpoint


class EmulatorBigQueryOfflineStore(BigQueryOfflineStore):
    """Feast's BigQuery offline store against the BigQuery emulator (module docstring)."""

    @override
    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        method = _feast_method("pull_latest_from_table_or_query", _endpoint(config))
        job: RetrievalJob = method(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
        )
        return job

    @override
    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        method = _feast_method("pull_all_from_table_or_query", _endpoint(config))
        job: RetrievalJob = method(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
        )
        return job

    @override
    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        method = _feast_method("get_historical_features", _endpoint(config))
        job: RetrievalJob = method(
            config,
            feature_views,
            feature_refs,
            entity_df,
            registry,
            project,
            full_feature_names,
            filter_by_created_timestamp,
            **kwargs,
        )
        return job

    @override
    @staticmethod
    def offline_write_batch(
        config: RepoConfig,
        feature_view: FeatureView,
        table: pyarrow.Table,
        progress: Callable[[int], Any] | None,
    ) -> None:
        method = _feast_method("offline_write_batch", _endpoint(config))
        method(config, feature_view, table, progress)

    @override
    @staticmethod
    def write_logged_features(
        config: RepoConfig,
        data: pyarrow.Table | Path,
        source: LoggingSource,
        logging_config: LoggingConfig,
        registry: BaseRegistry,
    ) -> None:
        method = _feast_method("write_logged_features", _endpoint(config))
        method(config, data, source, logging_config, registry)

    @override
    def get_table_column_names_and_types_from_data_source(
        self, config: RepoConfig, data_source: DataSource
    ) -> Iterable[tuple[str, str]]:
        """`BigQuerySource.get_table_column_names_and_types`, with the emulator client."""
        if not isinstance(data_source, BigQuerySource):
            msg = f"data source {data_source.name!r} is not a BigQuerySource"
            raise ConfigError(msg)
        store = config.offline_store
        client = emulator_client(
            _endpoint(config), store.billing_project_id or store.project_id, store.location
        )
        if data_source.query:
            sql = f"SELECT * FROM ({data_source.query}) LIMIT 0"
            schema = client.query(sql).result().schema
        else:
            schema = client.get_table(data_source.table).schema
        return [
            (f.name, f"ARRAY<{f.field_type}>" if f.mode == "REPEATED" else f.field_type)
            for f in schema
        ]
