"""Feast objects and the Feast repo configuration, generated from the registry.

Feast owns the online key/value encoding and the point-in-time retrieval; the registry
says what exists. One `FeatureView` per declared view reads the view's change-point
table (`valid_from` is Feast's event timestamp, `computed_at` its created timestamp),
so a point-in-time lookup at `t` takes the last row with `valid_from <= t`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml
from feast import BigQuerySource, FeatureService, FeatureView, Field
from feast import Entity as FeastEntity
from feast.types import Array, Bool, FeastType, Float32, Float64, Int64, String, UnixTimestamp
from feast.value_type import ValueType

from feature_store.config import PlatformConfig
from feature_store.definitions import DType
from feature_store.registry import Registry

VALID_FROM = "valid_from"
COMPUTED_AT = "computed_at"
ENTITY_KEY_SERIALIZATION_VERSION = 3

_FEAST_TYPES: dict[DType, FeastType] = {
    DType.INT64: Int64,
    DType.FLOAT64: Float64,
    DType.STRING: String,
    DType.BOOL: Bool,
    DType.TIMESTAMP: UnixTimestamp,
    DType.FLOAT32_VECTOR: Array(Float32),
}


def feast_type(dtype: DType) -> FeastType:
    return _FEAST_TYPES[dtype]


def table_id(config: PlatformConfig, view: str) -> str:
    """The change-point table of a view: `project.dataset.view`."""
    return f"{config.project}.{config.features_dataset}.{view}"


def feast_objects(registry: Registry, config: PlatformConfig) -> list[Any]:
    """Entities, feature views and feature services for `FeatureStore.apply`."""
    entities = {
        e.name: FeastEntity(
            name=e.name,
            join_keys=[e.join_key],
            value_type=ValueType.STRING,
            description=e.description,
        )
        for e in registry.entities
    }
    views: dict[str, FeatureView] = {}
    for view in registry.views:
        refs = registry.feature_refs(view)
        source = BigQuerySource(
            name=f"{view.name}_changes",
            table=table_id(config, view.name),
            timestamp_field=VALID_FROM,
            created_timestamp_column=COMPUTED_AT,
            description=f"Change-point rows of {view.name}.",
        )
        views[view.name] = FeatureView(
            name=view.name,
            entities=[entities[view.entity]],
            schema=[Field(name=r.feature, dtype=feast_type(r.dtype)) for r in refs],
            source=source,
            ttl=timedelta(0),  # rows are change points: a value holds until the next one
            online=view.online,
            description=view.description,
            tags={"source": view.source, "models": ",".join(registry.models_needed(view))},
        )
    services = []
    for service in registry.services:
        projections: list[Any] = []
        for ref in service.features:
            view_name, _, feature = ref.partition(":")
            fv = views[view_name]
            projections.append(fv[[feature]] if feature else fv)
        services.append(
            FeatureService(name=service.name, features=projections, description=service.description)
        )
    return [*entities.values(), *views.values(), *services]


# Store types Feast loads by class path: the installed project provides them, so plain
# Feast (SDK, CLI, a notebook) reading this repo needs no import of ours.
LOCAL_OFFLINE_STORE = "offline.feast_bigquery.EmulatorBigQueryOfflineStore"
NEWER_WINS_REDIS = "online.feast_stores.NewerWinsRedisOnlineStore"
NEWER_WINS_BIGTABLE = "online.feast_stores.NewerWinsBigtableOnlineStore"


def online_store_config(config: PlatformConfig, store: str) -> dict[str, Any]:
    """Feast's Redis or Bigtable store, whose writes keep the newer change point."""
    if store == "redis":
        return {"type": NEWER_WINS_REDIS, "connection_string": config.redis_connection}
    return {
        "type": NEWER_WINS_BIGTABLE,
        "project_id": config.project,
        "instance": config.bigtable_instance,
    }


def offline_store_config(config: PlatformConfig) -> dict[str, Any]:
    """Feast's own BigQuery store in production; locally, its emulator-bound subclass."""
    content: dict[str, Any] = {
        "type": "bigquery",
        "project_id": config.project,
        "dataset": config.features_dataset,
        "location": "US",
    }
    if config.local:
        content["type"] = LOCAL_OFFLINE_STORE
        content["endpoint"] = config.endpoints.bigquery
    return content


def repo_config(config: PlatformConfig, online_store: str | None = None) -> dict[str, Any]:
    """The content of feature_store.yaml (Redis online by default, Bigtable the alternative)."""
    store = online_store or config.online_stores[0]
    registry_path = "data/registry.db"
    return {
        "project": config.feast_project,
        "registry": registry_path,
        "provider": "local" if config.local else "gcp",
        "online_store": online_store_config(config, store),
        "offline_store": offline_store_config(config),
        "entity_key_serialization_version": ENTITY_KEY_SERIALIZATION_VERSION,
    }


def repo_yaml(config: PlatformConfig, online_store: str | None = None) -> str:
    return str(yaml.safe_dump(repo_config(config, online_store), sort_keys=False))
