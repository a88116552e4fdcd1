"""Online/offline consistency: for every entity, the online value read now through Feast
must equal Feast's point-in-time (offline) value at the same time, feature by feature.

Online timestamps come back from Feast's `UnixTimestamp` in whole seconds, so timestamp
features are compared at second precision; floats with a relative tolerance.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from feature_store.config import PlatformConfig
from feature_store.definitions import DType
from feature_store.registry import Registry
from jobs.retrieval import get_historical, get_online


@dataclass(frozen=True)
class Mismatch:
    view: str
    feature: str
    entity: str
    online: Any
    offline: Any


@dataclass
class ConsistencyReport:
    at: datetime
    entities: int = 0
    values: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def by_feature(self) -> dict[str, int]:
        return dict(Counter(f"{m.view}:{m.feature}" for m in self.mismatches))

    def as_dict(self, examples: int = 10) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "entities": self.entities,
            "values": self.values,
            "mismatches": len(self.mismatches),
            "by_feature": self.by_feature,
            "examples": [m.__dict__ for m in self.mismatches[:examples]],
        }


def _equal(online: Any, offline: Any, dtype: DType, rel_tol: float) -> bool:
    if online is None or offline is None:
        return online is None and offline is None
    if dtype is DType.TIMESTAMP:
        a, b = pd.Timestamp(online), pd.Timestamp(offline)
        return a.floor("s") == b.floor("s")
    if dtype is DType.FLOAT32_VECTOR:
        return len(online) == len(offline) and all(
            math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6)
            for x, y in zip(online, offline, strict=True)
        )
    if isinstance(online, (int, float)) and isinstance(offline, (int, float)):
        return math.isclose(float(online), float(offline), rel_tol=rel_tol, abs_tol=rel_tol)
    return bool(online == offline)


def entities_of(config: PlatformConfig, registry: Registry, view: str, limit: int) -> list[str]:
    """Entities with at least one offline row of the view."""
    from common.bigquery_client import make_client

    key = registry.entity(registry.view(view).entity).join_key
    client = make_client(config.project, config.bigquery_endpoint)
    table = f"{config.project}.{config.features_dataset}.{view}"
    rows = client.query(f"SELECT DISTINCT `{key}` AS k FROM `{table}` ORDER BY k LIMIT {limit}")
    return [r["k"] for r in rows.result()]


def check_consistency(
    config: PlatformConfig,
    registry: Registry,
    views: Sequence[str],
    at: datetime,
    *,
    entities: dict[str, list[str]] | None = None,
    store: str | None = None,
    limit: int = 10_000,
    rel_tol: float = 1e-9,
) -> ConsistencyReport:
    report = ConsistencyReport(at=at)
    for view in views:
        keys = (entities or {}).get(view) or entities_of(config, registry, view, limit)
        if not keys:
            continue
        refs = registry.resolve(view)
        names = [f"{r.view}:{r.feature}" for r in refs]
        key = registry.entity(registry.view(view).entity).join_key
        online = get_online(config, names, [{key: k} for k in keys], store)
        frame = pd.DataFrame({key: keys, "event_timestamp": [pd.Timestamp(at)] * len(keys)})
        offline = get_historical(config, names, frame)
        report.entities += len(keys)
        for k, on_row, off_row in zip(keys, online, offline, strict=True):
            for ref in refs:
                column = f"{ref.view}__{ref.feature}"
                report.values += 1
                if not _equal(on_row.get(column), off_row.get(column), ref.dtype, rel_tol):
                    report.mismatches.append(
                        Mismatch(view, ref.feature, k, on_row.get(column), off_row.get(column))
                    )
    return report
