"""A Redis that accepts connections and never answers fails a write within bounded
time (timeouts, retries with backoff), then fails the bundle with a counter and one
clear log line naming the store; it never blocks a bundle forever."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from common.metrics import local_counts, reset_local
from feature_store.errors import ConfigError
from online.redis_settings import RedisTimeouts
from online.redis_writer import RedisOnlineWriter, connect_redis
from online.rows import OnlineRow
from online.sink import OnlineStoreSpec, WriteToOnlineStores
from online.write_support import OnlineStoreWriteError, RetryPolicy
from tests.unit.online.test_sink import config
from tests.unit.online.views import user_view

FAST = RetryPolicy(attempts=3, initial_backoff_s=0.05, max_backoff_s=0.1)
SHORT = RedisTimeouts(connect_s=0.5, read_s=0.3)


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """Accepts every connection, reads nothing, answers nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def rows() -> list[OnlineRow]:
    return [
        OnlineRow(
            view="user_activity",
            entity_key=(["user_id"], ["u1"]),
            features={"review_count": 3},
            valid_from=datetime(2024, 5, 1, tzinfo=UTC),
        )
    ]


def test_default_timeouts_are_set_and_a_connection_string_wins() -> None:
    redis = config({"type": "redis", "connection_string": "cache:6379"})
    client, _, _ = connect_redis(redis, None)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (5.0, 10.0)
    client, _, _ = connect_redis(redis, "cache:6379,socket_timeout=2", SHORT)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (0.5, 2.0)


@pytest.mark.parametrize("bad", [0, -1.0])
def test_timeouts_must_be_positive(bad: float) -> None:
    with pytest.raises(ConfigError, match=str(bad)):
        RedisTimeouts(read_s=bad)


def test_a_hung_redis_fails_the_write_after_bounded_retries(
    silent_server: tuple[int, list[socket.socket]],
) -> None:
    port, accepted = silent_server
    redis = config({"type": "redis", "connection_string": f"127.0.0.1:{port}"})
    writer = RedisOnlineWriter(redis, None, feature_views=[user_view()], retry=FAST, timeouts=SHORT)
    begun = time.monotonic()
    with pytest.raises(OnlineStoreWriteError, match=f"127.0.0.1:{port}.*3 attempts"):
        writer.write(rows())
    took = time.monotonic() - begun
    assert 3 * SHORT.read_s <= took < 10
    assert len(accepted) >= 3  # each attempt reconnected after its timeout


def test_a_hung_redis_fails_the_bundle_with_a_counter_and_one_line(
    silent_server: tuple[int, list[socket.socket]], caplog: pytest.LogCaptureFixture
) -> None:
    port, _ = silent_server
    redis = config({"type": "redis", "connection_string": f"127.0.0.1:{port}"})
    spec = OnlineStoreSpec.create(
        redis=redis, feature_views=[user_view()], retry=FAST, redis_timeouts=SHORT
    )
    reset_local()
    begun = time.monotonic()
    with (
        caplog.at_level(logging.ERROR, logger="online.sink"),
        pytest.raises(Exception, match="3 attempts"),
        BeamTestPipeline() as pipeline,
    ):
        _ = pipeline | beam.Create(rows()) | WriteToOnlineStores(spec)
    assert time.monotonic() - begun < 60
    assert local_counts().get("write_failures_redis", 0) >= 1
    lines = [r.getMessage() for r in caplog.records if r.name == "online.sink"]
    assert lines
    assert all("online store redis failed" in line and str(port) in line for line in lines)
