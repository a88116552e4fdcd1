"""Feast's own writes (`write_to_online_store`, and so `materialize` and `push`) keep
the newer change point, in both online stores the generated repo names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from feast import FeatureStore

from feature_store.config import PlatformConfig
from jobs.provision import repo_path

pytestmark = pytest.mark.integration

T = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FEATURES = ("login_count_24h", "distinct_ips_24h", "distinct_countries_7d")


def _write(store: FeatureStore, user: str, valid_from: datetime, count: int) -> None:
    frame = pd.DataFrame(
        {
            "user_id": [user],
            "valid_from": [valid_from],
            "computed_at": [datetime.now(UTC)],
            "login_count_24h": [count],
            "distinct_ips_24h": [count + 1],
            "distinct_countries_7d": [count + 2],
        }
    )
    store.write_to_online_store("user_activity", frame)


def _read(store: FeatureStore, user: str) -> list[Any]:
    refs = [f"user_activity:{f}" for f in FEATURES]
    values = store.get_online_features(features=refs, entity_rows=[{"user_id": user}]).to_dict()
    return [values[f][0] for f in FEATURES]


@pytest.mark.parametrize("online", ["redis", "bigtable"])
def test_an_older_row_written_by_feast_does_not_replace_a_newer_one(
    platform: PlatformConfig, online: str
) -> None:
    store = FeatureStore(repo_path=str(repo_path(platform, online)))
    user = f"newer-wins-{online}"
    _write(store, user, T, 5)
    assert _read(store, user) == [5, 6, 7]
    _write(store, user, T - timedelta(microseconds=1000), 1)  # older: kept out
    assert _read(store, user) == [5, 6, 7]
    _write(store, user, T, 8)  # the same change point again: the later write wins
    assert _read(store, user) == [8, 9, 10]
    _write(store, user, T + timedelta(hours=1), 2)  # newer: written
    assert _read(store, user) == [2, 3, 4]
