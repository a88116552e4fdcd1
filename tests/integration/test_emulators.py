"""Each emulator does the one thing the jobs need from it, through the real client library.

Plus the stack's own contract: a service that dies is reported down by name, and `up`
brings it back while leaving the healthy ones alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, bigtable, pubsub_v1
from google.cloud.bigtable import column_family

from feature_store.config import LOCAL_PROJECT, PlatformConfig
from infra import stack as local_stack

pytestmark = pytest.mark.integration


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def test_pubsub_publish_then_pull(stack: PlatformConfig) -> None:
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(LOCAL_PROJECT, _unique("reviews"))
    subscription = subscriber.subscription_path(LOCAL_PROJECT, _unique("reviews-sub"))
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=10)
    try:
        payload = json.dumps({"review_id": "r-1", "user_id": "u-7", "rating": 4}).encode()
        message_id = publisher.publish(topic, payload, source="it").result(timeout=10)
        received = []
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            response = subscriber.pull(subscription=subscription, max_messages=10, timeout=5)
            received = list(response.received_messages)
        assert [m.message.data for m in received] == [payload]
        assert received[0].message.message_id == message_id
        assert dict(received[0].message.attributes) == {"source": "it"}
        subscriber.acknowledge(subscription=subscription, ack_ids=[received[0].ack_id])
    finally:
        subscriber.delete_subscription(subscription=subscription)
        publisher.delete_topic(topic=topic)
        subscriber.close()


@pytest.mark.filterwarnings("ignore:Connecting to Bigtable emulator:RuntimeWarning")
def test_bigtable_write_then_read_row(stack: PlatformConfig) -> None:
    client = bigtable.Client(project=LOCAL_PROJECT, admin=True)
    table = client.instance(stack.bigtable_instance).table(_unique("user_features"))
    table.create(column_families={"stats": column_family.MaxVersionsGCRule(1)})
    try:
        row = table.direct_row(b"user#u-7")
        row.set_cell("stats", b"review_count", (3).to_bytes(8, "big"))
        row.set_cell("stats", b"last_rating", b"4")
        row.commit()
        read = table.read_row(b"user#u-7")
        assert read is not None
        cells = {q: c[0].value for q, c in read.cells["stats"].items()}
        assert cells == {b"review_count": (3).to_bytes(8, "big"), b"last_rating": b"4"}
        assert table.read_row(b"user#nobody") is None
    finally:
        table.delete()


@pytest.fixture
def bq_dataset(stack: PlatformConfig) -> Iterator[tuple[bigquery.Client, str]]:
    client = bigquery.Client(
        project=LOCAL_PROJECT,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=stack.endpoints.bigquery),
    )
    dataset = client.create_dataset(_unique("it_features"))
    yield client, f"{LOCAL_PROJECT}.{dataset.dataset_id}"
    client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)
    client.close()


def test_bigquery_insert_then_query(bq_dataset: tuple[bigquery.Client, str]) -> None:
    client, dataset = bq_dataset
    ratings = [(f"u-{i % 3}", (i * 7) % 5 + 1) for i in range(12)]
    rows = [{"user_id": user, "rating": rating} for user, rating in ratings]
    schema = [bigquery.SchemaField("user_id", "STRING"), bigquery.SchemaField("rating", "INT64")]
    table = f"{dataset}.reviews"
    client.create_table(bigquery.Table(table, schema=schema))
    # Streaming insert: the emulator rejects load_table_from_json's multipart upload
    # (its second part is sent as Content-Type */*).
    assert client.insert_rows_json(table, rows) == []

    expected: dict[str, list[int]] = defaultdict(list)
    for user, rating in ratings:
        expected[user].append(rating)
    sql = (
        f"SELECT user_id, COUNT(*) AS n, SUM(rating) AS total FROM `{table}` "
        "GROUP BY user_id ORDER BY user_id"
    )
    got = [(r["user_id"], r["n"], r["total"]) for r in client.query(sql).result(timeout=30)]
    assert got == [(u, len(v), sum(v)) for u, v in sorted(expected.items())]


def test_redis_set_then_get(stack: PlatformConfig) -> None:
    client = redis.Redis(host=stack.endpoints.host, port=stack.endpoints.redis_port)
    key = _unique("it:user")
    try:
        assert client.get(key) is None
        client.set(key, b"\x00\x01features", ex=60)
        assert client.get(key) == b"\x00\x01features"
        assert client.incrby(f"{key}:n", 5) + client.incrby(f"{key}:n", 2) == 5 + 7
    finally:
        client.delete(key, f"{key}:n")
        client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_dead(pid: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} still alive {timeout_s}s after SIGKILL")


@pytest.fixture
def own_redis(stack: PlatformConfig, tmp_path: Path) -> Iterator[PlatformConfig]:
    """The session's Pub/Sub, Bigtable and BigQuery with a Redis of its own (own port, own
    state dir): killing that Redis never touches a stack someone else is using."""
    config = replace(
        stack,
        state_dir=tmp_path / "state",
        endpoints=replace(stack.endpoints, redis_port=_free_port()),
    )
    yield config
    local_stack.down(config)


def test_dead_service_is_reported_by_name_and_up_brings_it_back(
    stack: PlatformConfig, own_redis: PlatformConfig
) -> None:
    first = {s.name: s for s in local_stack.up(own_redis, timeout=30)}
    started = {n: s.started for n, s in first.items()}
    assert started == {"pubsub": False, "bigtable": False, "bigquery": False, "redis": True}
    pid = first["redis"].pid
    assert pid is not None
    client = redis.Redis(host=own_redis.endpoints.host, port=own_redis.endpoints.redis_port)
    client.set("before-crash", b"1")

    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid)
    after_crash = local_stack.status(own_redis)
    assert [s.name for s in after_crash if not s.healthy] == ["redis"]
    assert next(s for s in after_crash if s.name == "redis").pid is None

    again = {s.name: s for s in local_stack.up(own_redis, timeout=30)}
    assert again["redis"].started and again["redis"].pid not in (None, pid)
    assert client.get("before-crash") is None  # a fresh, non-persistent server
    client.set("after-restart", b"2")
    assert client.get("after-restart") == b"2"
    client.close()

    assert local_stack.down(own_redis) == ["redis"]
    assert [s.name for s in local_stack.status(own_redis) if not s.healthy] == ["redis"]
    assert all(s.healthy for s in local_stack.status(stack))
