"""Store-specific behaviour of the online writers: TTL, failures, tables, Feast's deletes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feast.infra.online_stores.bigtable import BigtableOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from redis import Redis

from feature_store.config import Endpoints
from online.bigtable_writer import BigtableOnlineWriter
from online.feast_layout import redis_key
from online.redis_writer import RedisOnlineWriter
from online.rows import OnlineRow
from online.write_support import OnlineStoreWriteError, RetryPolicy
from tests.integration.online_repos import (
    VIEWS,
    OnlineRepo,
    make_repo,
    point_clients_at_emulators,
)

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
FAST_RETRY = RetryPolicy(attempts=2, initial_backoff_s=0.01, max_backoff_s=0.01)


@pytest.fixture(scope="module")
def endpoints() -> Endpoints:
    found = Endpoints.from_env()
    point_clients_at_emulators(found)
    return found


@pytest.fixture
def redis_repo(tmp_path: Path, endpoints: Endpoints) -> Iterator[OnlineRepo]:
    made = make_repo("redis", tmp_path / "redis", endpoints)
    yield made
    made.close()


@pytest.fixture
def bigtable_repo(tmp_path: Path, endpoints: Endpoints) -> Iterator[OnlineRepo]:
    made = make_repo("bigtable", tmp_path / "bigtable", endpoints)
    yield made
    made.close()


def row(user: str, count: int, at: datetime = T0, view: str = VIEWS[0]) -> OnlineRow:
    return OnlineRow(view, (["user_id"], [user]), {"review_count": count}, at)


def user_key(user: str) -> EntityKeyProto:
    return EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(string_val=user)])


def test_redis_keys_expire_after_feast_key_ttl(
    redis_repo: OnlineRepo, endpoints: Endpoints
) -> None:
    ttl_config = redis_repo.config.model_copy(deep=True)
    ttl_config.online_store.key_ttl_seconds = 300
    writer = RedisOnlineWriter(ttl_config, feature_views=redis_repo.views)
    writer.write([row("gina", 1)])
    client = Redis.from_url(f"redis://{endpoints.redis}")
    assert 0 < client.ttl(redis_key(redis_repo.config, user_key("gina"))) <= 300


def test_unreachable_redis_fails_naming_the_host(redis_repo: OnlineRepo) -> None:
    writer = RedisOnlineWriter(
        redis_repo.config, "127.0.0.1:1", feature_views=redis_repo.views, retry=FAST_RETRY
    )
    with pytest.raises(OnlineStoreWriteError, match=r"redis at 127\.0\.0\.1:1 .*2 attempts"):
        writer.write([row("hank", 1)])


def test_redis_url_connections_write_the_same_rows(
    redis_repo: OnlineRepo, endpoints: Endpoints
) -> None:
    writer = RedisOnlineWriter(
        redis_repo.config, f"redis://{endpoints.redis}/0", feature_views=redis_repo.views
    )
    writer.write([row("ivy", 9)])
    assert redis_repo.read(["ivy"])["review_count"] == [9]


def test_redis_writes_go_on_after_the_server_forgets_its_scripts(
    redis_repo: OnlineRepo, endpoints: Endpoints
) -> None:
    """A restarted or flushed server has no scripts: the writer loads them again (under
    the SHA-1 it already holds) and writes the rows."""
    redis_repo.writer.write([row("kim", 1)])
    Redis.from_url(f"redis://{endpoints.redis}/0").script_flush()
    assert redis_repo.writer.write([row("kim", 4, T0 + timedelta(hours=1))]).written == 1
    assert redis_repo.read(["kim"])["review_count"] == [4]


def test_view_dropped_by_feast_can_be_backfilled_with_older_rows(redis_repo: OnlineRepo) -> None:
    """Feast deletes its fields of a dropped view, not our `_vf:` one; that must not block
    a later backfill of the view with older change points."""
    redis_repo.writer.write([row("jay", 5, T0 + timedelta(days=1)), row("jay", 7, view=VIEWS[1])])
    dropped = next(v for v in redis_repo.views if v.name == VIEWS[0])
    redis_repo.feast._get_provider().online_store.delete_table(redis_repo.config, dropped)
    assert redis_repo.read(["jay"])["review_count"] == [None]
    assert redis_repo.writer.write([row("jay", 3)]).written == 1
    assert redis_repo.read(["jay"])["review_count"] == [3]
    assert redis_repo.read(["jay"], VIEWS[1])["review_count"] == [7]


def test_concurrent_redis_writers_leave_each_key_at_its_newest_row(
    redis_repo: OnlineRepo,
) -> None:
    """Two writers (the stream and a backfill) write the same keys at once, each its
    rows in its own shuffled order, in small calls: every key ends at its newest row,
    whoever wrote it and whenever, and each writer's counts add up."""
    users = [f"con-{i}" for i in range(200)]
    steps = list(range(12))  # row `step` of a user: valid_from T0 + step s, count step
    streams = []
    for seed in (1, 2):
        rng = random.Random(seed)
        mine = [(user, step) for user in users for step in steps if step % 2 == seed % 2]
        rng.shuffle(mine)
        streams.append(mine)
    writers = [
        RedisOnlineWriter(redis_repo.config, feature_views=redis_repo.views, rows_per_script=7)
        for _ in streams
    ]

    def write_all(writer: RedisOnlineWriter, stream: list[tuple[str, int]]) -> int:
        written = 0
        for start in range(0, len(stream), 50):
            rows = [
                row(user, step, T0 + timedelta(seconds=step))
                for user, step in stream[start : start + 50]
            ]
            stats = writer.write(rows)
            assert stats.written + stats.stale + stats.coalesced == len(rows)
            written += stats.written
        return written

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(write_all, writers, streams))
    for writer in writers:
        writer.close()
    newest = max(steps)
    read = redis_repo.read(users, event_ts=True)
    assert read["review_count"] == [newest] * len(users)
    assert read["review_count__ts"] == [int(T0.timestamp()) + newest] * len(users)
    assert sum(done) >= len(users)  # each key's newest row was written, once at least


def test_ensure_tables_creates_what_feast_reads(bigtable_repo: OnlineRepo) -> None:
    repo = bigtable_repo
    fresh_config = repo.config.model_copy(update={"project": f"{repo.config.project}x"})
    writer = BigtableOnlineWriter(fresh_config, feature_views=repo.views)
    try:
        with pytest.raises(OnlineStoreWriteError, match="ensure_tables"):
            writer.write([row("kim", 1)])
        assert writer.ensure_tables() == [f"{fresh_config.project}.user"]
        assert writer.ensure_tables() == []
        writer.write([row("kim", 4)])
        [(_, values)] = BigtableOnlineStore().online_read(
            fresh_config, repo.views[0], [user_key("kim")], ["review_count"]
        )
        assert values == {"review_count": ValueProto(int64_val=4)}
    finally:
        BigtableOnlineStore().teardown(fresh_config, repo.views, [])


def test_bigtable_keeps_cells_at_valid_from_milliseconds(bigtable_repo: OnlineRepo) -> None:
    repo = bigtable_repo
    at = T0 + timedelta(microseconds=123_999)
    repo.writer.write([row("lee", 2, at)])
    [(event_ts, _)] = BigtableOnlineStore().online_read(
        repo.config, repo.views[0], [user_key("lee")], ["review_count"]
    )
    assert event_ts == at  # Feast's event_ts column keeps microseconds
    repo.writer.write([row("lee", 1, T0 + timedelta(microseconds=123_000))])  # same millisecond
    assert repo.read(["lee"])["review_count"] == [1]  # documented: later write wins a tie


def test_bigtable_writes_in_concurrent_requests_of_feast_size(bigtable_repo: OnlineRepo) -> None:
    repo = bigtable_repo
    small = repo.config.model_copy(deep=True)
    small.online_store.mutations_per_write = 20  # 7 cells a row: 2 rows a request
    writer = BigtableOnlineWriter(small, feature_views=repo.views)
    users = [f"m{i}" for i in range(25)]
    stats = writer.write([row(user, i) for i, user in enumerate(users)])
    assert (stats.written, stats.retries) == (25, 0)
    assert repo.read(users)["review_count"] == list(range(25))
