"""`consistency` checks every entity (paged), finds entities online but absent offline,
and `--at` in the past compares only online rows that were valid then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feature_store.config import PlatformConfig
from feature_store.errors import ConfigError
from feature_store.reference import REGISTRY
from jobs.backfill import run_backfill
from jobs.consistency import ABSENT_OFFLINE, check_consistency
from jobs.online_sink import online_store_spec
from online.rows import OnlineRow
from simulator.traffic import SimulationConfig, simulate, write_jsonl
from tests.integration.checks import records

pytestmark = pytest.mark.integration

VIEW = "user_review_stats"
GHOST = "ghost-user-online-only"


@pytest.fixture(scope="module")
def backfilled(platform: PlatformConfig, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    config = SimulationConfig(
        seed=31,
        start=datetime.now(UTC) - timedelta(days=2),
        duration=timedelta(days=1, hours=20),
        events=600,
        users=25,
        businesses=6,
        bad_share=0.0,
        duplicate_share=0.0,
        late_share=0.0,
    )
    messages = list(simulate(config))
    folder = tmp_path_factory.mktemp("consistency")
    write_jsonl(messages, folder)
    run_backfill(platform, REGISTRY, [str(Path(folder))], views=[VIEW])
    return messages


def users(messages: list[Any]) -> int:
    return len({key for view, key in records(messages) if view == VIEW})


def test_every_entity_is_checked_across_pages(
    platform: PlatformConfig, backfilled: list[Any]
) -> None:
    expected = users(backfilled)
    assert expected > 7  # more than two pages of 3
    for store in platform.online_stores:
        report = check_consistency(platform, REGISTRY, [VIEW], store=store, page_size=3)
        assert report.mismatches == [], report.as_dict()
        assert report.entities + report.newer_than_at == expected


def test_a_past_at_compares_only_rows_valid_then(
    platform: PlatformConfig, backfilled: list[Any]
) -> None:
    at = datetime.now(UTC) - timedelta(days=1)
    for store in platform.online_stores:
        report = check_consistency(platform, REGISTRY, [VIEW], at, store=store)
        assert report.mismatches == [], report.as_dict()
        assert report.newer_than_at > 0  # most latest rows began after `at`
        assert report.entities + report.newer_than_at == users(backfilled)


def test_future_at_is_refused(platform: PlatformConfig) -> None:
    with pytest.raises(ConfigError, match="future"):
        check_consistency(platform, REGISTRY, [VIEW], datetime.now(UTC) + timedelta(hours=1))


def test_an_entity_online_but_absent_offline_is_a_mismatch(
    platform: PlatformConfig, backfilled: list[Any]
) -> None:
    spec = online_store_spec(platform)
    views = spec.views()
    plan_features = {f.name: 1 for f in next(v for v in views if v.name == VIEW).features}
    row = OnlineRow(
        view=VIEW,
        entity_key=(["user_id"], [GHOST]),
        features=plan_features,
        valid_from=datetime.now(UTC) - timedelta(hours=1),
    )
    for writer in spec.writers(views).values():
        writer.write([row])
        writer.close()
    for store in platform.online_stores:
        report = check_consistency(platform, REGISTRY, [VIEW], store=store)
        assert report.online_only == 1, (store, report.as_dict())
        (ghost,) = [m for m in report.mismatches if m.feature == ABSENT_OFFLINE]
        if store == "redis":  # Bigtable keys hold only a hash of the entity
            assert ghost.entity == GHOST
        assert len(report.mismatches) == 1
