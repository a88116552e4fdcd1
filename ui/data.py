"""What the page shows, read from where it lives: the registries, the online store
(freshness, rows), the BigQuery change-point tables (rows, history) and Feast (values).

Nothing here is cached: each page load reads the stores again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feature_store.config import PlatformConfig
from feature_store.events import from_micros
from feature_store.feast_repo import VALID_FROM, table_id
from feature_store.registry import Registry

log = logging.getLogger(__name__)

MAX_SCANNED_KEYS = 1_000_000
HISTORY_ROWS = 500


@dataclass(frozen=True, kw_only=True)
class FeatureInfo:
    name: str
    dtype: str
    window: str
    description: str


@dataclass(frozen=True, kw_only=True)
class ViewInfo:
    name: str
    entity: str
    join_key: str
    source: str
    description: str
    online: bool
    features: tuple[FeatureInfo, ...]


@dataclass(frozen=True, kw_only=True)
class ViewHealth:
    """Online rows and the newest online `valid_from`; offline change points."""

    view: str
    online_rows: int | None = None
    online_newest: datetime | None = None
    offline_rows: int | None = None
    offline_entities: int | None = None
    offline_newest: datetime | None = None
    scanned_all: bool = True
    error: str = ""

    def age_s(self, now: datetime) -> float | None:
        return None if self.online_newest is None else (now - self.online_newest).total_seconds()


def catalog(config: PlatformConfig, registry: Registry) -> list[ViewInfo]:
    """Views and features as Feast has them registered (names, types), with the
    descriptions and windows of our declarations."""
    from jobs.provision import feature_store

    fs = feature_store(config)
    views = []
    for fv in sorted(fs.list_feature_views(), key=lambda v: v.name):
        declared = registry.view(fv.name)
        features = []
        for field in fv.features:
            feature = declared.feature(field.name)
            description = feature.description or feature.aggregation.describe()
            features.append(
                FeatureInfo(
                    name=field.name,
                    dtype=str(field.dtype),
                    window=feature.window_spec.label,
                    description=description,
                )
            )
        views.append(
            ViewInfo(
                name=fv.name,
                entity=declared.entity,
                join_key=registry.entity(declared.entity).join_key,
                source=declared.source,
                description=fv.description or declared.description,
                online=fv.online,
                features=tuple(features),
            )
        )
    return views


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\^" else c for c in text)


def online_health(config: PlatformConfig, views: list[str]) -> dict[str, ViewHealth]:
    """Rows per view and the newest `valid_from` in the Redis online store: one SCAN over
    the project's entity hashes, reading each view's `_vf:` field (microseconds)."""
    from jobs.provision import feature_store
    from online.feast_layout import redis_view_layout
    from online.redis_writer import connect_redis

    if "redis" not in config.online_stores:
        return {v: ViewHealth(view=v, error="no redis online store") for v in views}
    fs = feature_store(config, "redis")
    fields = [redis_view_layout(fs.config, fs.get_feature_view(v)).valid_from_field for v in views]
    client, _, _ = connect_redis(fs.config, config.redis_connection)
    rows = dict.fromkeys(views, 0)
    newest: dict[str, int] = {}
    scanned, batch = 0, []
    pattern = "*" + _glob_escape(config.feast_project)

    def fold(keys: list[bytes]) -> None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, fields)  # type: ignore[arg-type]
        for values in pipe.execute():
            for view, value in zip(views, values, strict=True):
                if value is not None:
                    rows[view] += 1
                    newest[view] = max(newest.get(view, 0), int(value))

    try:
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            scanned += 1
            if len(batch) == 1000:
                fold(batch)
                batch = []
            if scanned >= MAX_SCANNED_KEYS:
                break
        fold(batch)
    finally:
        client.close()
    complete = scanned < MAX_SCANNED_KEYS
    return {
        v: ViewHealth(
            view=v,
            online_rows=rows[v],
            online_newest=from_micros(newest[v]) if v in newest else None,
            scanned_all=complete,
        )
        for v in views
    }


def offline_health(config: PlatformConfig, registry: Registry, view: str) -> dict[str, Any]:
    """Change points, entities and the newest `valid_from` of a view's BigQuery table."""
    from common.bigquery_client import make_client

    key = registry.entity(registry.view(view).entity).join_key
    client = make_client(config.project, config.endpoints.bigquery if config.local else None)
    sql = (
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT `{key}`) AS entities, "
        f"MAX(`{VALID_FROM}`) AS newest FROM `{table_id(config, view)}`"
    )
    row = next(iter(client.query(sql).result()))
    newest = row["newest"]
    if newest is not None and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return {"offline_rows": row["n"], "offline_entities": row["entities"], "offline_newest": newest}


def health(config: PlatformConfig, registry: Registry, views: list[str]) -> list[ViewHealth]:
    """Online and offline figures per view; a store that fails is named, not hidden."""
    try:
        online = online_health(config, views)
    except Exception as exc:  # a store down must not take the page down
        log.warning("online store unreadable: %s", exc)
        online = {v: ViewHealth(view=v, error=f"online: {exc}") for v in views}
    out = []
    for view in views:
        base = online[view]
        try:
            offline = offline_health(config, registry, view)
        except Exception as exc:
            log.warning("offline table of %s unreadable: %s", view, exc)
            out.append(_replace(base, error=(base.error + f" offline: {exc}").strip()))
            continue
        out.append(_replace(base, **offline))
    return out


def _replace(health: ViewHealth, **changes: Any) -> ViewHealth:
    from dataclasses import replace

    return replace(health, **changes)


def lookup(
    config: PlatformConfig, registry: Registry, view: str, key: str, store: str | None = None
) -> dict[str, Any]:
    """The online values of every feature of `view` for one entity, through Feast."""
    from jobs.retrieval import get_online

    join_key = registry.entity(registry.view(view).entity).join_key
    refs = [f"{r.view}:{r.feature}" for r in registry.resolve(view)]
    row = get_online(config, refs, [{join_key: key}], store)[0]
    return {r.split(":")[1]: row.get(r.replace(":", "__")) for r in refs}


def history(
    config: PlatformConfig, registry: Registry, view: str, feature: str, key: str
) -> list[tuple[datetime, Any]]:
    """The entity's change points of one feature (point-in-time rows), oldest first:
    the value holds from each `valid_from` until the next one. The newest rows only."""
    from google.cloud import bigquery

    from common.bigquery_client import make_client

    declared = registry.view(view)
    declared.feature(feature)  # raises, naming it, when the view has no such feature
    join_key = registry.entity(declared.entity).join_key
    client = make_client(config.project, config.endpoints.bigquery if config.local else None)
    sql = (
        f"SELECT `{VALID_FROM}` AS t, `{feature}` AS v FROM `{table_id(config, view)}` "
        f"WHERE `{join_key}` = @key ORDER BY t DESC LIMIT {HISTORY_ROWS}"
    )
    job_config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("key", "STRING", key)]
    )
    points = []
    for row in client.query(sql, job_config=job_config).result():
        t = row["t"] if row["t"].tzinfo else row["t"].replace(tzinfo=UTC)
        points.append((t, row["v"]))
    return points[::-1]
