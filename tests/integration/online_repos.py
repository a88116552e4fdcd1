"""Throwaway Feast repos on the local Redis and Bigtable emulator, for the writer tests."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from feast import FeatureStore, FeatureView, RepoConfig
from feast.repo_config import load_repo_config

from feature_store.config import LOCAL_PROJECT, Endpoints
from online.bigtable_writer import BigtableOnlineWriter
from online.redis_writer import RedisOnlineWriter
from online.write_support import OnlineWriter
from tests.unit.online.views import FEATURES, USER, user_view

BIGTABLE_INSTANCE = "feature-store"
VIEWS = ("user_activity", "user_activity_7d")


def point_clients_at_emulators(endpoints: Endpoints) -> None:
    """The Google clients read the emulator host from the environment."""
    os.environ.setdefault("BIGTABLE_EMULATOR_HOST", endpoints.bigtable)
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", LOCAL_PROJECT)


def online_store_yaml(store: str, endpoints: Endpoints) -> str:
    if store == "redis":
        return f"type: redis\n  connection_string: {endpoints.redis}"
    return f"type: bigtable\n  project_id: {LOCAL_PROJECT}\n  instance: {BIGTABLE_INSTANCE}"


@dataclass
class OnlineRepo:
    """A Feast repo whose online store is `store`, its views applied, and our writer."""

    store: str
    path: Path
    feast: FeatureStore
    config: RepoConfig
    views: list[FeatureView]
    writer: OnlineWriter

    def read(
        self, user_ids: list[str], view: str = VIEWS[0], *, event_ts: bool = False
    ) -> dict[str, list[object]]:
        response = self.feast.get_online_features(
            features=[f"{view}:{f.name}" for f in FEATURES],
            entity_rows=[{"user_id": u} for u in user_ids],
        )
        return response.to_dict(include_event_timestamps=event_ts)

    def close(self) -> None:
        self.writer.close()
        self.feast.teardown()


def make_repo(store: str, root: Path, endpoints: Endpoints, project: str = "") -> OnlineRepo:
    """A fresh repo under `root` with a project name of its own, views applied."""
    project = project or f"t{uuid.uuid4().hex[:10]}"
    root.mkdir(parents=True, exist_ok=True)
    (root / "feature_store.yaml").write_text(
        f"project: {project}\n"
        f"registry: {root / 'registry.db'}\n"
        "provider: local\n"
        f"online_store:\n  {online_store_yaml(store, endpoints)}\n"
        "entity_key_serialization_version: 3\n"
    )
    config = load_repo_config(root, root / "feature_store.yaml")
    feast = FeatureStore(repo_path=str(root))
    views = [user_view(name, str(root / "unused.parquet")) for name in VIEWS]
    feast.apply([USER, *views])
    writer: OnlineWriter
    if store == "redis":
        writer = RedisOnlineWriter(config, feature_views=views)
    else:
        writer = BigtableOnlineWriter(config, feature_views=views)
    return OnlineRepo(store, root, feast, config, views, writer)


def whole_seconds(at: datetime) -> datetime:
    """What Feast's UnixTimestamp keeps of a datetime."""
    return at.replace(microsecond=0)
