"""`apply` / `plan`: every resource the registry implies, then the Feast registry.

Order: Pub/Sub topics and subscriptions, BigQuery datasets and tables, the Feast repo
(one feature_store.yaml per online store, sharing one Feast registry), Feast apply
(which also creates the Bigtable tables Feast reads).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path
from typing import Any

from feature_store.config import PlatformConfig
from feature_store.feast_repo import feast_objects, repo_config
from feature_store.registry import Registry
from feature_store.resources import Change
from feature_store.schemas import all_tables

log = logging.getLogger(__name__)


def repo_path(config: PlatformConfig, store: str) -> Path:
    """The Feast repo folder of one online store (the first store's is the default)."""
    if store == config.online_stores[0]:
        return config.feast_repo
    return config.feast_repo.with_name(f"{config.feast_repo.name}_{store}")


def write_feast_repos(config: PlatformConfig) -> dict[str, Path]:
    """feature_store.yaml for each online store; all share the default repo's registry."""
    import yaml

    registry_file = (config.feast_repo / "data" / "registry.db").resolve()
    registry_file.parent.mkdir(parents=True, exist_ok=True)
    paths = {}
    for store in config.online_stores:
        path = repo_path(config, store)
        path.mkdir(parents=True, exist_ok=True)
        content = repo_config(config, store)
        content["registry"] = str(registry_file)
        (path / "feature_store.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
        paths[store] = path
    return paths


def feature_store(config: PlatformConfig, store: str | None = None) -> Any:
    """A Feast `FeatureStore` over our repo (the default online store unless named).

    Plain Feast: the repo's feature_store.yaml names the store types (the emulator-bound
    offline store locally), so nothing needs configuring in this process."""
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo_path(config, store or config.online_stores[0])))


def apart(base: PlatformConfig, *, prefix: str, state_root: Path) -> PlatformConfig:
    """`base` with topics, datasets and a Feast project (so Redis keys and Bigtable
    tables) of its own, named after `prefix` and a random id, and its state in a folder
    of `state_root`: many such platforms, each applied, share one set of emulators
    without seeing each other."""
    uid = uuid.uuid4().hex[:8]
    return dataclasses.replace(
        base,
        features_dataset=f"{prefix}_features_{uid}",
        archive_dataset=f"{prefix}_events_{uid}",
        feast_project=f"{prefix}{uid}",
        topic_prefix=f"{prefix}{uid}-",
        state_dir=state_root / f"{prefix}-{uid}",
    )


def infrastructure_changes(
    config: PlatformConfig, registry: Registry, *, apply: bool
) -> list[Change]:
    from common.bigquery_admin import bigquery_changes
    from common.bigquery_client import make_client
    from online.pubsub_admin import pubsub_changes

    changes = pubsub_changes(config.project, registry, apply=apply, prefix=config.topic_prefix)
    client = make_client(config.project, config.bigquery_endpoint)
    specs = all_tables(registry, config.features_dataset, config.archive_dataset)
    changes += bigquery_changes(client, specs, apply=apply)
    return changes


def feast_changes(config: PlatformConfig, registry: Registry, *, apply: bool) -> list[Change]:
    write_feast_repos(config)
    objects = feast_objects(registry, config)
    changes: list[Change] = []
    for store in config.online_stores:
        fs = feature_store(config, store)
        registry_diff, _, _ = fs.plan(_contents(objects, config))
        for diff in registry_diff.feast_object_diffs:
            if diff.name.startswith("__"):  # Feast's own internal objects
                continue
            action = {"CREATE": "create", "UPDATE": "update", "DELETE": "delete"}.get(
                diff.transition_type.name, "exists"
            )
            kind = diff.feast_object_type.name.lower().replace("_", " ")
            changes.append(Change(f"feast {kind}", diff.name, action))
        if apply:
            fs.apply(objects)  # Feast creates the online tables of this store
        if not apply:
            break  # the registry is shared: one plan says it all
    return _unique(changes)


def _contents(objects: list[Any], config: PlatformConfig) -> Any:
    from feast import Entity, FeatureService, FeatureView, Project
    from feast.repo_contents import RepoContents

    views = [o for o in objects if isinstance(o, FeatureView)]
    return RepoContents(
        projects=[Project(name=config.feast_project)],
        data_sources=[v.batch_source for v in views if v.batch_source is not None],
        feature_views=views,
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=[o for o in objects if isinstance(o, Entity)],
        feature_services=[o for o in objects if isinstance(o, FeatureService)],
        permissions=[],
    )


def _unique(changes: list[Change]) -> list[Change]:
    seen: dict[tuple[str, str], Change] = {}
    for change in changes:
        seen.setdefault((change.kind, change.name), change)
    return list(seen.values())
