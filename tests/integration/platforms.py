"""A platform of a test module's own on the shared emulators, applied with a registry."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from feature_store.config import PlatformConfig
from feature_store.registry import Registry


def own_platform(
    stack: PlatformConfig, tmp_path_factory: pytest.TempPathFactory, registry: Registry
) -> PlatformConfig:
    """Its own topics, datasets, Feast project (so its own Redis keys and Bigtable
    tables) and state dir, with everything `registry` declares applied."""
    from jobs.provision import feast_changes, infrastructure_changes

    uid = uuid.uuid4().hex[:8]
    config = dataclasses.replace(
        stack,
        features_dataset=f"features_{uid}",
        archive_dataset=f"events_{uid}",
        feast_project=f"t{uid}",
        topic_prefix=f"t{uid}-",
        state_dir=tmp_path_factory.mktemp(f"platform-{uid}"),
    )
    infrastructure_changes(config, registry, apply=True)
    feast_changes(config, registry, apply=True)
    return config
