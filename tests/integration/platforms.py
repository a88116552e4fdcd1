"""A platform of a test module's own on the shared emulators, applied with a registry."""

from __future__ import annotations

import pytest

from feature_store.config import PlatformConfig
from feature_store.registry import Registry


def own_platform(
    stack: PlatformConfig, tmp_path_factory: pytest.TempPathFactory, registry: Registry
) -> PlatformConfig:
    """Its own topics, datasets, Feast project (so its own Redis keys and Bigtable
    tables) and state dir, with everything `registry` declares applied."""
    from jobs.provision import apart, feast_changes, infrastructure_changes

    config = apart(stack, prefix="t", state_root=tmp_path_factory.mktemp("platforms"))
    infrastructure_changes(config, registry, apply=True)
    feast_changes(config, registry, apply=True)
    return config
