"""Session fixtures: the local emulator stack, started once and reused.

The stack is brought up with `infra.stack.up`, which reuses services already answering
on their ports (a `make up`, a docker compose stack) and starts the rest. Ports follow
FEATURE_STORE_<SERVICE>_PORT and the state dir FEATURE_STORE_HOME, like the CLI. The
services this session started are stopped again at its end; the others are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from feature_store.config import PlatformConfig
from infra import stack as local_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120.0


@pytest.fixture(scope="session")
def stack() -> Iterator[PlatformConfig]:
    """The local platform config, with every emulator answering and the env pointing at it."""
    state_dir = os.environ.get("FEATURE_STORE_HOME", str(REPO_ROOT / ".local"))
    config = PlatformConfig.local_default(state_dir)
    statuses = local_stack.up(config, timeout=STARTUP_TIMEOUT_S)
    config.apply_env()
    yield config
    started = [s.name for s in statuses if s.started]
    if started:
        local_stack.down(config, started)


@pytest.fixture(scope="module")
def platform(stack: PlatformConfig, tmp_path_factory: pytest.TempPathFactory) -> PlatformConfig:
    """A platform of its own on the shared emulators: its own topics, datasets, Feast
    project (so its own Redis keys and Bigtable tables) and state dir; all applied."""
    from feature_store.reference import REGISTRY
    from tests.integration.platforms import own_platform

    return own_platform(stack, tmp_path_factory, REGISTRY)
