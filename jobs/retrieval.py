"""Reading features back through the Feast SDK: online now, or history at given times."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from feature_store.config import PlatformConfig
from feature_store.errors import ConfigError
from feature_store.registry import Registry


def feature_refs(registry: Registry, specs: Sequence[str]) -> list[str]:
    """`view` or `view:feature` (comma-separated allowed) → Feast `view:feature` refs."""
    refs: list[str] = []
    for spec in specs:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            refs += [f"{r.view}:{r.feature}" for r in registry.resolve(part)]
    if not refs:
        msg = f"no features named in {list(specs)}"
        raise ConfigError(msg)
    return refs


def join_keys_of(registry: Registry, refs: Sequence[str]) -> list[str]:
    views = {r.split(":")[0] for r in refs}
    return sorted({registry.entity(registry.view(v).entity).join_key for v in views})


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def get_online(
    config: PlatformConfig,
    refs: Sequence[str],
    entity_rows: list[dict[str, str]],
    store: str | None = None,
) -> list[dict[str, Any]]:
    from jobs.provision import feature_store

    fs = feature_store(config, store)
    result = fs.get_online_features(
        features=list(refs), entity_rows=entity_rows, full_feature_names=True
    ).to_dict()
    n = len(entity_rows)
    return [{k: _jsonable(v[i]) for k, v in result.items()} for i in range(n)]


def get_historical(
    config: PlatformConfig, refs: Sequence[str], entity_df: pd.DataFrame
) -> list[dict[str, Any]]:
    """Point-in-time lookups: each row's features as of its `event_timestamp`."""
    from jobs.provision import feature_store

    fs = feature_store(config)
    numbered = entity_df.assign(request_row=range(len(entity_df)))  # Feast passes it through
    frame = fs.get_historical_features(
        entity_df=numbered, features=list(refs), full_feature_names=True
    ).to_df()
    frame = frame.sort_values("request_row").drop(columns="request_row")
    return [{k: _jsonable(v) for k, v in row.items()} for row in frame.to_dict("records")]
