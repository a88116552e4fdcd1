"""Writer settings resolved from Feast repo configs (no store is contacted)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from feast import RepoConfig
from feast.repo_config import RegistryConfig
from google.cloud.bigtable.row import DirectRow
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import code_pb2
from google.rpc.status_pb2 import Status
from hypothesis import example, given
from hypothesis import strategies as st

from feature_store.errors import ConfigError
from online.bigtable_writer import _transient_failures, cell_timestamp
from online.redis_writer import connect_redis, event_stamps, newer_wins_script


def config(online_store: dict[str, object]) -> RepoConfig:
    return RepoConfig(
        project="reviews",
        registry=RegistryConfig(path="registry.db"),
        provider="local",
        online_store=online_store,
        entity_key_serialization_version=3,
    )


def test_feast_connection_string_gives_target_and_ttl() -> None:
    redis = config({"type": "redis", "connection_string": "cache:6380,db=1", "key_ttl_seconds": 90})
    client, target, ttl = connect_redis(redis, None)
    assert (target, ttl) == ("redis at cache:6380", 90)
    assert client.connection_pool.connection_kwargs["db"] == 1
    assert client.get_retry().get_retries() == 0  # the writer's policy is the only retry


def test_connection_override_keeps_feast_settings() -> None:
    redis = config({"type": "redis", "connection_string": "cache:6379", "key_ttl_seconds": 30})
    _, target, ttl = connect_redis(redis, "other:7000,password=secret")
    assert (target, ttl) == ("redis at other:7000", 30)
    _, url_target, _ = connect_redis(redis, "redis://:secret@third:7001/2")
    assert url_target == "redis at third:7001"


@pytest.mark.parametrize(
    ("online_store", "named"),
    [
        ({"type": "redis", "redis_type": "redis_cluster"}, "redis_cluster"),
        ({"type": "bigtable", "instance": "i"}, "bigtable"),
    ],
)
def test_unsupported_redis_settings_are_refused(
    online_store: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        connect_redis(config(online_store), None)


def test_bigtable_cells_are_truncated_to_the_millisecond() -> None:
    at = datetime(2024, 1, 1, 0, 0, 0, 123_999, tzinfo=UTC)
    assert cell_timestamp(at) == datetime(2024, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(9999, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
)
@example(datetime(1970, 1, 1, tzinfo=UTC))  # zero seconds and nanos: both left out
@example(datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC))
@example(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
@example(datetime(2025, 3, 1, 12, tzinfo=UTC))  # whole seconds: nanos left out
@example(datetime.fromtimestamp(2**35 - 1, UTC))  # the last 5-byte seconds
@example(datetime.fromtimestamp(2**35, UTC))  # past them: protobuf's own encoding
def test_event_stamp_is_the_timestamp_feast_writes(at: datetime) -> None:
    feast_way = Timestamp()
    feast_way.FromDatetime(at)  # what Feast's RedisOnlineStore stores in `_ts:<view>`
    (micros,), (event_ts,) = event_stamps([at])
    assert event_ts == feast_way.SerializeToString()
    assert int(micros) == _micros_since_epoch(at)
    assert micros == str(int(micros)).encode()


def _micros_since_epoch(at: datetime) -> int:
    since_epoch = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (since_epoch.days * 86_400 + since_epoch.seconds) * 10**6 + since_epoch.microseconds


@given(
    st.lists(
        st.datetimes(
            min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
            max_value=datetime(2200, 1, 1),  # noqa: DTZ001
            timezones=st.just(UTC),
        ),
        max_size=30,
    )
)
def test_event_stamps_of_a_flush_are_each_rows_own(ats: list[datetime]) -> None:
    """One `Timestamp` is set again for every row: nothing of a row (its nanos, say)
    may stay in the next one's bytes."""
    ats += [datetime(2025, 3, 1, 12, tzinfo=UTC), datetime(2025, 3, 1, 12, 0, 0, 5, tzinfo=UTC)]
    micros, stamps = event_stamps(ats)
    for at, row_micros, stamp in zip(ats, micros, stamps, strict=True):
        feast_way = Timestamp()
        feast_way.FromDatetime(at)
        assert stamp == feast_way.SerializeToString()
        assert row_micros == b"%d" % _micros_since_epoch(at)


def test_newer_wins_script_spells_out_every_feature() -> None:
    wide = newer_wins_script(130)
    assert wide.count("redis.call('HSET'") == 3
    assert "ARGV[133], ARGV[at + 132]" in wide  # the last field and its value


def test_bigtable_statuses_split_into_retry_and_failure() -> None:
    rows = [DirectRow(f"row-{i}".encode()) for i in range(3)]
    ok, busy = Status(code=code_pb2.OK), Status(code=code_pb2.UNAVAILABLE)
    assert _transient_failures("t", rows, [ok, busy, busy]) == rows[1:]
    missing = Status(code=code_pb2.NOT_FOUND, message="no table")
    with pytest.raises(ValueError, match=r"row-2.*ensure_tables"):
        _transient_failures("t", rows, [busy, ok, missing])
