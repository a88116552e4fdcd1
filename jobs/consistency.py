"""Online/offline consistency: for every entity of a view, the online row read through
Feast must equal Feast's point-in-time (offline) value, feature by feature.

An online store holds one row per entity, the latest, valid from its event time until
the next change point its writer emits. So the check is made at an instant `at`
(default: when the check starts) and compares the offline value at `at` with each
online row that was already valid then (event time <= `at`): a row written after `at`
says nothing about `at`, and is counted apart (`newer_than_at`), not compared. `at`
must be an instant the online writers have reached: a backfill's as-of time, or an
event time the streaming job's watermark has passed. After a stream's watermark (a
stopped job, or a running one's lag) a value may already have changed, an event leaving
its window, with no row written yet, while the offline rows have the change (the demo
checks at `jobs.stream.StreamProgress.complete_until`). Every entity is checked: the
offline entities page by page, then those that have an online row but no offline row at
all (each a mismatch).

Online timestamps come back from Feast's `UnixTimestamp` in whole seconds, so timestamp
features are compared at second precision; floats with a relative tolerance.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from feature_store.config import PlatformConfig
from feature_store.definitions import DerivedField, DType
from feature_store.errors import ConfigError
from feature_store.registry import Registry
from jobs.retrieval import get_historical


@dataclass(frozen=True)
class Mismatch:
    view: str
    feature: str
    entity: str
    online: Any
    offline: Any


ABSENT_OFFLINE = "*"
"""The `feature` of a mismatch for an entity that has an online row and no offline row."""


@dataclass
class ConsistencyReport:
    at: datetime
    entities: int = 0
    values: int = 0
    newer_than_at: int = 0
    online_only: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def by_feature(self) -> dict[str, int]:
        return dict(Counter(f"{m.view}:{m.feature}" for m in self.mismatches))

    def as_dict(self, examples: int = 10) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "entities": self.entities,
            "values": self.values,
            "newer_than_at": self.newer_than_at,
            "online_only": self.online_only,
            "mismatches": len(self.mismatches),
            "by_feature": self.by_feature,
            "examples": [m.__dict__ for m in self.mismatches[:examples]],
        }


MODEL_TOLERANCE = 1e-5
"""Absolute tolerance of values computed from model outputs (sentiment, embeddings and
what is aggregated or projected from them): the float32 models give results that differ
in the last digits with the batch a text is padded in, and the stream and the backfill
batch texts differently (the model stage's tests state the same bound)."""


def _from_models(registry: Registry, view: str, feature: str) -> bool:
    """Whether a feature's values come from a model output (through a derived field)."""
    v = registry.view(view)
    source_field = registry.field_of(v.source, v.feature(feature).aggregation.field or "")
    seen: set[str] = set()
    while isinstance(source_field, DerivedField) and source_field.name not in seen:
        seen.add(source_field.name)
        if source_field.producer.startswith(("model:", "pca:")):
            return True
        source_field = registry.field_of(v.source, source_field.input)
    return False


def _equal(online: Any, offline: Any, dtype: DType, rel_tol: float) -> bool:
    if online is None or offline is None:
        return online is None and offline is None
    if dtype is DType.TIMESTAMP:
        a, b = pd.Timestamp(online), pd.Timestamp(offline)
        return bool(a.floor("s") == b.floor("s"))
    if dtype is DType.FLOAT32_VECTOR:
        tol = max(rel_tol, 1e-6)
        return len(online) == len(offline) and all(
            math.isclose(x, y, rel_tol=tol, abs_tol=tol)
            for x, y in zip(online, offline, strict=True)
        )
    if isinstance(online, (int, float)) and isinstance(offline, (int, float)):
        return math.isclose(float(online), float(offline), rel_tol=rel_tol, abs_tol=rel_tol)
    return bool(online == offline)


PAGE_SIZE = 1000


def entity_pages(
    config: PlatformConfig, registry: Registry, view: str, page_size: int = PAGE_SIZE
) -> Iterator[list[str]]:
    """Every entity with at least one offline row of the view, in pages (keyset
    pagination on the join key: no entity is skipped or repeated between pages)."""
    from google.cloud import bigquery

    from common.bigquery_client import make_client

    key = registry.entity(registry.view(view).entity).join_key
    client = make_client(config.project, config.bigquery_endpoint)
    table = f"{config.project}.{config.features_dataset}.{view}"
    last: str | None = None
    while True:
        after = "" if last is None else f"WHERE `{key}` > @last"
        sql = f"SELECT DISTINCT `{key}` AS k FROM `{table}` {after} ORDER BY k LIMIT {page_size}"
        params = [] if last is None else [bigquery.ScalarQueryParameter("last", "STRING", last)]
        job = client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
        page = [str(r["k"]) for r in job.result()]
        if page:
            yield page
        if len(page) < page_size:
            return
        last = page[-1]


def _online_rows(
    config: PlatformConfig, names: list[str], key: str, keys: list[str], store: str | None
) -> list[tuple[dict[str, Any], int]]:
    """Each entity's online values and the event time of its row (whole seconds, 0 when
    the store has no row)."""
    from jobs.provision import feature_store
    from jobs.retrieval import _jsonable

    response = feature_store(config, store).get_online_features(
        features=names, entity_rows=[{key: k} for k in keys], full_feature_names=True
    )
    result = response.to_dict(include_event_timestamps=True)
    stamps = [v for k, v in result.items() if k.endswith("__ts")]
    rows = []
    for i in range(len(keys)):
        values = {k: _jsonable(v[i]) for k, v in result.items() if not k.endswith("__ts")}
        rows.append((values, max((int(s[i] or 0) for s in stamps), default=0)))
    return rows


def check_consistency(
    config: PlatformConfig,
    registry: Registry,
    views: Sequence[str],
    at: datetime | None = None,
    *,
    entities: dict[str, list[str]] | None = None,
    store: str | None = None,
    page_size: int = PAGE_SIZE,
    rel_tol: float = 1e-9,
) -> ConsistencyReport:
    """`entities`: check only these (per view) instead of every entity."""
    now = datetime.now(UTC)
    at = at or now
    if at > now:
        msg = f"--at must not be in the future (offline values are not known yet), got {at}"
        raise ConfigError(msg)
    report = ConsistencyReport(at=at)
    for view in views:
        named = (entities or {}).get(view)
        pages = [named] if named else entity_pages(config, registry, view, page_size)
        seen: set[str] = set()
        for keys in pages:
            _check_page(config, registry, view, keys, store, report, rel_tol)
            seen.update(keys)
        if not named:
            _online_only(config, registry, view, seen, store, report)
    return report


def _check_page(
    config: PlatformConfig,
    registry: Registry,
    view: str,
    keys: list[str],
    store: str | None,
    report: ConsistencyReport,
    rel_tol: float,
) -> None:
    refs = registry.resolve(view)
    names = [f"{r.view}:{r.feature}" for r in refs]
    key = registry.entity(registry.view(view).entity).join_key
    online = _online_rows(config, names, key, keys, store)
    at_s = int(report.at.timestamp())
    # A row stamped in the second of `at` or later may be valid only after `at`.
    comparable = [i for i, (_, stamp_s) in enumerate(online) if stamp_s < at_s]
    report.newer_than_at += len(keys) - len(comparable)
    if not comparable:
        return
    chosen = [keys[i] for i in comparable]
    frame = pd.DataFrame({key: chosen, "event_timestamp": [pd.Timestamp(report.at)] * len(chosen)})
    offline = get_historical(config, names, frame)
    report.entities += len(chosen)
    tolerance = {
        ref.feature: MODEL_TOLERANCE if _from_models(registry, view, ref.feature) else rel_tol
        for ref in refs
    }
    for i, off_row in zip(comparable, offline, strict=True):
        on_row = online[i][0]
        for ref in refs:
            column = f"{ref.view}__{ref.feature}"
            report.values += 1
            tol = tolerance[ref.feature]
            if not _equal(on_row.get(column), off_row.get(column), ref.dtype, tol):
                report.mismatches.append(
                    Mismatch(view, ref.feature, keys[i], on_row.get(column), off_row.get(column))
                )


def _online_only(
    config: PlatformConfig,
    registry: Registry,
    view: str,
    offline: set[str],
    store: str | None,
    report: ConsistencyReport,
) -> None:
    """Entities with an online row of `view` and no offline row: each a mismatch."""
    from jobs.provision import feature_store
    from online import entity_scan

    store = store or config.online_stores[0]
    fs = feature_store(config, store)
    feast_view = fs.get_feature_view(view)
    if store == "redis":
        extra = sorted(
            set(entity_scan.redis_entities(fs.config, feast_view, config.redis_connection))
            - offline
        )
    else:
        key = registry.entity(registry.view(view).entity).join_key
        known = entity_scan.expected_keys(fs.config, feast_view, key, offline)
        rows = entity_scan.bigtable_row_keys(
            fs.config, feast_view, config.project, config.bigtable_instance
        )
        extra = sorted(r.decode() for r in rows if r not in known)
    report.online_only += len(extra)
    for entity in extra:
        report.mismatches.append(Mismatch(view, ABSENT_OFFLINE, entity, "present", None))
