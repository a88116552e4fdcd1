"""Feast's own BigQuery offline store, run on the emulator: point-in-time joins to the µs.

The change-point table is written with the project's BigQuery writer; Feast reads it
with its own SQL. Expected values are computed here independently: for each lookup
(user, t), the row with the latest `valid_from <= t`, and among equal `valid_from` the
latest `computed_at`; no row means NULL features.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feast.infra.offline_stores.bigquery as feast_bq
import pandas as pd
import pytest
import yaml
from feast import BigQuerySource, Entity, FeatureStore, FeatureView, Field
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.types import Array, Float64, Int64
from feast.value_type import ValueType
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from common.bigquery_client import make_client
from feature_store.config import LOCAL_PROJECT
from offline.bigquery_sink import ensure_table, load_rows
from offline.feast_bigquery import (
    FeastEmulatorClient,
    restore_feast_bigquery,
    use_bigquery_emulator,
)
from tests.integration.bq_emulator import emulator_endpoint, scratch_dataset

pytestmark = pytest.mark.integration

US = timedelta(microseconds=1)
T = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
FEATURES = ("score", "clicks", "embedding")
SCHEMA = [
    bigquery.SchemaField("user_id", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("valid_from", "TIMESTAMP", mode="REQUIRED"),
    bigquery.SchemaField("score", "FLOAT64"),
    bigquery.SchemaField("clicks", "INT64"),
    bigquery.SchemaField("embedding", "FLOAT64", mode="REPEATED"),
    bigquery.SchemaField("computed_at", "TIMESTAMP", mode="REQUIRED"),
]


def _row(user: str, valid_from: datetime, computed_at: datetime, **values: Any) -> dict[str, Any]:
    return {"user_id": user, "valid_from": valid_from, "computed_at": computed_at, **values}


CHANGE_POINTS = [
    _row("u1", T, T, score=1.0, clicks=1, embedding=[1.0, 0.0]),
    _row("u1", T + US, T, score=0.1 + 0.2, clicks=2, embedding=[0.5, 0.25]),
    # The same change point computed twice: the later computation wins.
    _row("u1", T + timedelta(days=1), T + timedelta(days=2), score=3.0, clicks=3, embedding=[3.0]),
    _row("u1", T + timedelta(days=1), T + timedelta(days=3), score=None, clicks=30, embedding=[]),
    _row("u2", T - timedelta(hours=1), T, score=-1e-300, clicks=2**62 + 1, embedding=[0.125]),
]
LOOKUPS = [
    ("u1", T - US),  # before the first change point: nothing
    ("u1", T),  # exactly at a change point: that one
    ("u1", T + US),  # 1 µs later, exactly at the next one
    ("u1", T + timedelta(days=1) - US),  # 1 µs before the next: the previous one
    ("u1", T + timedelta(days=1)),
    ("u1", T + timedelta(days=400)),  # no TTL: a value holds until the next change point
    ("u2", T - timedelta(hours=1) - US),
    ("u2", T - timedelta(hours=1)),
    ("u3", T),  # an entity without rows
]


TTL = timedelta(days=1)
TTL_LOOKUPS = [
    ("u1", T + timedelta(days=1) - US),  # the T+1µs row is 1 day - 2 µs old: kept
    ("u1", T + timedelta(days=2)),  # the T+1d row is exactly 1 day old: kept
    ("u1", T + timedelta(days=2) + US),  # 1 day + 1 µs old: dropped
    ("u2", T - timedelta(hours=1) + TTL),
    ("u2", T - timedelta(hours=1) + TTL + US),
]


def expected_features(user: str, at: datetime, ttl: timedelta | None = None) -> dict[str, Any]:
    """The independent point-in-time answer for one lookup (Feast's TTL is inclusive)."""
    candidates = [
        r
        for r in CHANGE_POINTS
        if r["user_id"] == user
        and r["valid_from"] <= at
        and (ttl is None or r["valid_from"] >= at - ttl)
    ]
    if not candidates:
        # BigQuery returns a NULL ARRAY as an empty one (the emulator does the same).
        return {"score": None, "clicks": None, "embedding": []}
    best = max(candidates, key=lambda r: (r["valid_from"], r["computed_at"]))
    return {f: best.get(f) for f in FEATURES}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        yield emulator_endpoint(patch)


@pytest.fixture(scope="module")
def client(endpoint: str) -> bigquery.Client:
    return make_client(LOCAL_PROJECT, endpoint)


@pytest.fixture(scope="module")
def dataset(client: bigquery.Client) -> Iterator[str]:
    with scratch_dataset(client, "feast_pit") as name:
        yield name


@pytest.fixture(scope="module")
def change_point_table(client: bigquery.Client, dataset: str) -> str:
    table = f"{LOCAL_PROJECT}.{dataset}.user_activity"
    ensure_table(client, table, SCHEMA, partition_field="valid_from", clustering_fields=["user_id"])
    assert load_rows(client, table, CHANGE_POINTS) == len(CHANGE_POINTS)
    return table


def _feast_repo(path: Path, dataset: str) -> Path:
    config = {
        "project": "pit_test",
        "provider": "gcp",
        "registry": str(path / "registry.db"),
        "offline_store": {
            "type": "bigquery",
            "dataset": f"{dataset}_feast",
            "project_id": LOCAL_PROJECT,
        },
        "online_store": {"type": "sqlite", "path": str(path / "online.db")},
        "entity_key_serialization_version": 3,
    }
    (path / "feature_store.yaml").write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def store(
    endpoint: str,
    client: bigquery.Client,
    dataset: str,
    change_point_table: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FeatureStore]:
    use_bigquery_emulator(endpoint)
    try:
        repo = _feast_repo(tmp_path_factory.mktemp("feast_repo"), dataset)
        user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
        source = BigQuerySource(
            name="user_activity_changes",
            table=change_point_table,
            timestamp_field="valid_from",
            created_timestamp_column="computed_at",
        )
        schema = [
            Field(name="score", dtype=Float64),
            Field(name="clicks", dtype=Int64),
            Field(name="embedding", dtype=Array(Float64)),
        ]
        # ttl 0 (or None, stored as 0): no lower bound in Feast's SQL.
        view = FeatureView(
            name="user_activity", entities=[user], ttl=timedelta(0), schema=schema, source=source
        )
        view_1d = FeatureView(
            name="user_activity_1d", entities=[user], ttl=TTL, schema=schema, source=source
        )
        feature_store = FeatureStore(repo_path=str(repo))
        feature_store.apply([user, view, view_1d])
        yield feature_store
    finally:
        restore_feast_bigquery()
        client.delete_dataset(f"{dataset}_feast", delete_contents=True, not_found_ok=True)


def _historical(store: FeatureStore) -> list[dict[str, Any]]:
    """Rows of the point-in-time join, read as Arrow (to_df() would turn INT64 with NULLs
    into float64, which is pandas' doing and inexact above 2**53)."""
    rows: list[dict[str, Any]] = _job(store).to_arrow().to_pylist()
    return rows


def _job(store: FeatureStore) -> RetrievalJob:
    entity_df = pd.DataFrame(
        {"user_id": [u for u, _ in LOOKUPS], "event_timestamp": [t for _, t in LOOKUPS]}
    )
    return store.get_historical_features(
        entity_df=entity_df, features=[f"user_activity:{f}" for f in FEATURES]
    )


def test_point_in_time_join_is_exact_to_the_microsecond_and_repeatable(
    store: FeatureStore,
) -> None:
    for attempt in (1, 2):  # the second call is the one the emulator's leaked temp tables broke
        rows = _historical(store)
        got = {(r["user_id"], r["event_timestamp"]): {f: r[f] for f in FEATURES} for r in rows}
        assert len(rows) == len(got) == len(LOOKUPS), f"attempt {attempt}"
        assert set(got) == set(LOOKUPS), f"attempt {attempt}: lookup timestamps changed"
        for user, at in LOOKUPS:
            assert got[(user, at)] == expected_features(user, at), (
                f"attempt {attempt}: {user} @ {at}"
            )
    # to_df() reads through to_dataframe(create_bqstorage_client=True): REST here as well.
    # Its INT64 column with NULLs comes back as float64 (pandas), hence the float.
    frame = _job(store).to_df()
    assert sorted(frame["clicks"].dropna()) == [1, 2, 2, 30, 30, float(2**62 + 1)]


def test_ttl_and_full_feature_names(store: FeatureStore) -> None:
    entity_df = pd.DataFrame(
        {"user_id": [u for u, _ in TTL_LOOKUPS], "event_timestamp": [t for _, t in TTL_LOOKUPS]}
    )
    job = store.get_historical_features(
        entity_df=entity_df,
        features=[f"user_activity_1d:{f}" for f in FEATURES],
        full_feature_names=True,
    )
    got = {
        (r["user_id"], r["event_timestamp"]): {f: r[f"user_activity_1d__{f}"] for f in FEATURES}
        for r in job.to_arrow().to_pylist()
    }
    assert set(got) == set(TTL_LOOKUPS)
    for user, at in TTL_LOOKUPS:
        assert got[(user, at)] == expected_features(user, at, TTL), f"{user} @ {at}"
    assert [got[k]["clicks"] for k in TTL_LOOKUPS] == [2, 30, None, 2**62 + 1, None]


def test_expected_values_cover_every_case() -> None:
    """The lookups above exercise what they claim to (guards the test data itself)."""
    answers = [expected_features(u, t)["clicks"] for u, t in LOOKUPS]
    assert answers == [None, 1, 2, 2, 30, 30, None, 2**62 + 1, None]


def test_materialize_loads_the_latest_change_point_online(store: FeatureStore) -> None:
    store.materialize(start_date=T - timedelta(days=1), end_date=T + timedelta(days=10))
    online = store.get_online_features(
        features=[f"user_activity:{f}" for f in FEATURES],
        entity_rows=[{"user_id": "u1"}, {"user_id": "u2"}, {"user_id": "u3"}],
    ).to_dict()
    far_future = T + timedelta(days=10)
    for index, user in enumerate(("u1", "u2")):
        expected = expected_features(user, far_future)
        assert {f: online[f][index] for f in FEATURES} == expected, user
    # An entity the offline table never mentioned is unknown online: all None.
    assert [online[f][2] for f in FEATURES] == [None, None, None]


@pytest.mark.usefixtures("store")  # Feast is pointed at the emulator
def test_a_scripts_temp_tables_end_with_it() -> None:
    client = feast_bq._get_bigquery_client(project=LOCAL_PROJECT)
    assert isinstance(client, FeastEmulatorClient)
    script = "CREATE TEMP TABLE pit_probe AS (SELECT 7 AS x);\nSELECT x FROM pit_probe"
    for _ in range(2):
        assert [row.x for row in client.query(script).result()] == [7]
    with pytest.raises(NotFound):
        client.query("SELECT x FROM pit_probe").result()


def test_the_emulator_itself_keeps_temp_tables_beyond_their_script(client: bigquery.Client) -> None:
    """Why `FeastEmulatorClient` exists. When this fails, the emulator was fixed and the
    temp-table scoping in offline/feast_bigquery.py can go."""
    name = f"leak_probe_{datetime.now(UTC):%H%M%S%f}"
    client.query(f"CREATE TEMP TABLE {name} AS (SELECT 1 AS x);\nSELECT x FROM {name}").result()
    try:
        assert [row.x for row in client.query(f"SELECT x FROM {name}").result()] == [1]
    finally:
        client.query(f"DROP TABLE IF EXISTS {name}").result()
