"""Throughput of `RedisOnlineWriter` against Feast's own Redis write paths, same rows.

`bench_redis_write` writes the same rows (8 features of the dtypes the jobs produce)
three ways, each into fresh keys of its own Feast project:

- ours: `RedisOnlineWriter.write` from `OnlineRow`s of Python values (conversion,
  coalescing and the newer-wins script included), in one call and, as the Beam sink
  calls it, in batches of its default `batch_size`;
- Feast's `FeatureStore.write_to_online_store` from a DataFrame of those rows;
- Feast's `RedisOnlineStore.online_write_batch` given the rows already as `ValueProto`s
  (the conversion, done by `feast.type_map`, is timed apart).
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RegistryConfig
from feast.type_map import python_values_to_proto_values
from feast.types import Array, Bool, Float32, Float64, Int64, String, UnixTimestamp

from online.redis_writer import RedisOnlineWriter
from online.rows import OnlineRow, RowEncoder
from online.sink import DEFAULT_BATCH_SIZE

logger = logging.getLogger(__name__)

_USER = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
_FIELDS = (
    Field(name="review_count", dtype=Int64),
    Field(name="helpful_votes", dtype=Int64),
    Field(name="avg_rating", dtype=Float64),
    Field(name="rating_stddev", dtype=Float64),
    Field(name="last_category", dtype=String),
    Field(name="last_review_at", dtype=UnixTimestamp),
    Field(name="is_verified", dtype=Bool),
    Field(name="embedding", dtype=Array(Float32)),
)
_CATEGORIES = ("books", "music", "games", "garden", "toys", "films")


@dataclass(frozen=True)
class RedisWriteBench:
    """Rows per second of each path (best of the repeats) on the same rows."""

    rows: int
    features: int
    ours_rows_per_s: float
    ours_in_sink_batches_rows_per_s: float
    feast_write_to_online_store_rows_per_s: float
    feast_online_write_batch_rows_per_s: float
    feast_type_map_conversion_rows_per_s: float

    @property
    def speedup_vs_write_to_online_store(self) -> float:
        return self.ours_rows_per_s / self.feast_write_to_online_store_rows_per_s

    @property
    def speedup_vs_online_write_batch(self) -> float:
        return self.ours_rows_per_s / self.feast_online_write_batch_rows_per_s


def bench_redis_write(
    connection: str = "127.0.0.1:6379", rows: int = 100_000, repeats: int = 3, seed: int = 7
) -> RedisWriteBench:
    """Time the write paths on `rows` rows into the Redis at `connection`; each path
    writes fresh keys, `repeats` times, interleaved with the others."""
    with tempfile.TemporaryDirectory() as tmp:
        view = _view(Path(tmp))
        data = _rows(view.name, rows, random.Random(seed))
        frame = _frame(data)
        best = dict.fromkeys(("ours", "sink", "frame", "batch", "convert"), math.inf)
        for _ in range(repeats):
            for path, seconds in _one_round(Path(tmp), connection, view, data, frame).items():
                best[path] = min(best[path], seconds)
    rates = {path: rows / seconds for path, seconds in best.items()}
    result = RedisWriteBench(
        rows,
        len(_FIELDS),
        rates["ours"],
        rates["sink"],
        rates["frame"],
        rates["batch"],
        rates["convert"],
    )
    logger.info("redis write bench: %s", result)
    return result


def _one_round(
    root: Path, connection: str, view: FeatureView, data: list[OnlineRow], frame: pd.DataFrame
) -> dict[str, float]:
    stores = [_feature_store(root, connection, view, kind) for kind in range(4)]
    try:
        writer = RedisOnlineWriter(stores[0].config, feature_views=[view])
        timings = {"ours": _timed(lambda: writer.write(data))}
        in_batches = RedisOnlineWriter(stores[3].config, feature_views=[view])
        timings["sink"] = _timed(lambda: _write_in_batches(in_batches, data))
        timings["frame"] = _timed(lambda: stores[1].write_to_online_store(view.name, frame))
        started = time.perf_counter()
        batch = _feast_batch(data)
        timings["convert"] = time.perf_counter() - started
        online = stores[2]._get_provider().online_store
        config = stores[2].config
        timings["batch"] = _timed(lambda: online.online_write_batch(config, view, batch, None))
        writer.close()
        in_batches.close()
    finally:
        for store in stores:
            store.teardown()
    return timings


def _write_in_batches(writer: RedisOnlineWriter, data: list[OnlineRow]) -> None:
    """As `WriteToOnlineStores` does: encode, then write, a batch of rows at a time."""
    encoder = RowEncoder([_view(Path())])
    for start in range(0, len(data), DEFAULT_BATCH_SIZE):
        writer.write_encoded(encoder.encode_all(data[start : start + DEFAULT_BATCH_SIZE]))


def _view(root: Path) -> FeatureView:
    return FeatureView(
        name="bench_user_activity",
        entities=[_USER],
        schema=[Field(name="user_id", dtype=String), *_FIELDS],
        source=FileSource(path=str(root / "unused.parquet"), timestamp_field="ts"),
        online=True,
    )


def _feature_store(root: Path, connection: str, view: FeatureView, kind: int) -> FeatureStore:
    config = RepoConfig(
        project=f"bench{kind}_{uuid.uuid4().hex[:8]}",
        registry=RegistryConfig(path=str(root / f"registry{kind}.db")),
        provider="local",
        online_store={"type": "redis", "connection_string": connection},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    store.apply([_USER, view])
    return store


def _rows(view: str, count: int, rng: random.Random) -> list[OnlineRow]:
    start = datetime(2024, 6, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        at = start + timedelta(microseconds=rng.randrange(86_400_000_000))
        features = {
            "review_count": rng.randrange(1000),
            "helpful_votes": rng.randrange(10_000),
            "avg_rating": rng.uniform(1, 5),
            "rating_stddev": rng.uniform(0, 2),
            "last_category": rng.choice(_CATEGORIES),
            "last_review_at": at,
            "is_verified": rng.random() < 0.5,
            "embedding": [rng.uniform(-1, 1) for _ in range(8)],
        }
        out.append(OnlineRow(view, (["user_id"], [f"user-{i}"]), features, at))
    return out


def _user_ids(count: int) -> list[object]:
    return [f"user-{i}" for i in range(count)]


def _frame(rows: list[OnlineRow]) -> pd.DataFrame:
    columns: dict[str, list[object]] = {"user_id": _user_ids(len(rows))}
    for field in _FIELDS:
        columns[field.name] = [r.features[field.name] for r in rows]
    columns["ts"] = [r.valid_from for r in rows]
    return pd.DataFrame(columns)


def _feast_batch(
    rows: list[OnlineRow],
) -> list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]]:
    keys = python_values_to_proto_values(_user_ids(len(rows)), ValueType.STRING)
    columns = {
        f.name: python_values_to_proto_values(
            [r.features[f.name] for r in rows], f.dtype.to_value_type()
        )
        for f in _FIELDS
    }
    return [
        (
            EntityKeyProto(join_keys=["user_id"], entity_values=[keys[i]]),
            {name: values[i] for name, values in columns.items()},
            row.valid_from,
            None,
        )
        for i, row in enumerate(rows)
    ]


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
