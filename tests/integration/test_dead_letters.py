"""Nothing is dropped after a log line: rows an online store refuses reach the stream's
`<topic>-dlq` and the backfill's dead-letter file, and an archived record the contract
refuses at warm start reaches the dlq, each with its reason and counted.

A store refuses every row of a view its Feast registry does not hold (definitions
changed, `apply` not run yet): the sink here is given the registry without one view.
"""

from __future__ import annotations

import glob
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import pubsub_v1

from common.bigquery_client import cached_client
from feature_store.config import PlatformConfig
from feature_store.events import DeadLetter
from feature_store.reference import REGISTRY
from feature_store.resources import dlq_topic, inspect_subscription
from feature_store.schemas import archive_table_ids
from jobs.backfill import plans_for, run_backfill
from jobs.provision import repo_path, write_feast_repos
from jobs.runner import make_pipeline
from jobs.stream import StreamSettings, build_stream
from online.rejected import REASON
from online.sink import OnlineStoreSpec, WriteToOnlineStores
from simulator.publisher import publish_messages
from simulator.traffic import SimulationConfig, simulate, write_jsonl
from tests.integration.checks import VIEWS, records

pytestmark = pytest.mark.integration

MISSING = "business_review_stats"  # its rows are refused
BAD_ARCHIVED = b'{"event_id": "archived-bad-1", "event_type": "review_created"}'


def partial_sink(platform: PlatformConfig) -> WriteToOnlineStores:
    write_feast_repos(platform)
    repos = {store: repo_path(platform, store) for store in platform.online_stores}
    full = OnlineStoreSpec.create(redis=repos.get("redis"), bigtable=repos.get("bigtable"))
    return WriteToOnlineStores(
        OnlineStoreSpec.create(
            redis=repos.get("redis"),
            bigtable=repos.get("bigtable"),
            feature_views=[v for v in full.views() if v.name != MISSING],
            redis_connection=platform.redis_connection,
            bigtable_project=platform.project,
            bigtable_instance=platform.bigtable_instance,
        )
    )


def messages_now(seed: int) -> list[Any]:
    config = SimulationConfig(
        seed=seed,
        start=datetime.now(UTC) - timedelta(minutes=2),
        duration=timedelta(minutes=1),
        events=150,
        users=8,
        businesses=4,
        bad_share=0.0,
        duplicate_share=0.0,
        late_share=0.0,
    )
    return list(simulate(config))


def missing_view_keys(messages: list[Any]) -> set[str]:
    return {key for view, key in records(messages) if view == MISSING}


def _archive_invalid_record(platform: PlatformConfig) -> None:
    table = archive_table_ids(platform, REGISTRY)["review-events"]
    now = datetime.now(UTC)
    row = {
        "event_id": "archived-bad-1",
        "event_type": "review_created",
        "event_time": (now - timedelta(minutes=1)).isoformat(),
        "payload": BAD_ARCHIVED.decode(),
        "ingested_at": now.isoformat(),
    }
    errors = cached_client(platform.project, platform.endpoints.bigquery).insert_rows_json(
        table, [row]
    )
    assert not errors, errors


def _pull_dlq(platform: PlatformConfig, wanted: int) -> list[tuple[bytes, dict[str, str]]]:
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(
        platform.project, platform.topic_id(inspect_subscription(dlq_topic("review-events")))
    )
    got: list[tuple[bytes, dict[str, str]]] = []
    deadline = time.monotonic() + 30
    while len(got) < wanted and time.monotonic() < deadline:
        response = subscriber.pull(subscription=path, max_messages=500, timeout=10)
        got += [(r.message.data, dict(r.message.attributes)) for r in response.received_messages]
        if response.received_messages:
            subscriber.acknowledge(
                subscription=path, ack_ids=[r.ack_id for r in response.received_messages]
            )
    subscriber.close()
    return got


def test_stream_sends_refused_rows_and_invalid_history_to_the_dlq(
    platform: PlatformConfig,
) -> None:
    _archive_invalid_record(platform)
    plans, _ = plans_for(REGISTRY, VIEWS)
    pipeline = make_pipeline([], streaming=True)
    build_stream(pipeline, platform, REGISTRY, plans, StreamSettings(), partial_sink(platform))
    messages = messages_now(seed=21)
    result = pipeline.run()
    try:
        time.sleep(5)  # the job subscribes
        topics = {t: platform.topic_id(t) for t in ("review-events", "user-events")}
        publish_messages(platform.project, messages, rate=400, topic_ids=topics)
        time.sleep(15)
    finally:
        result.cancel()
    expected = missing_view_keys(messages)
    assert expected
    letters = _pull_dlq(platform, 1 + len(expected))
    history = [attrs for data, attrs in letters if data == BAD_ARCHIVED]
    assert len(history) == 1
    assert history[0]["dlq_reason"] not in ("", REASON)
    refused = [(json.loads(data), attrs) for data, attrs in letters if data != BAD_ARCHIVED]
    assert {attrs["dlq_reason"] for _, attrs in refused} == {REASON}
    assert {body["view"] for body, _ in refused} == {MISSING}
    assert {body["entity_key"]["business_id"] for body, _ in refused} == expected


def test_backfill_writes_refused_rows_to_its_dead_letter_file(
    platform: PlatformConfig, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = messages_now(seed=22)
    write_jsonl(messages, tmp_path / "events")
    monkeypatch.setattr("jobs.online_sink.online_sink", partial_sink)
    dead = str(tmp_path / "dead" / "backfill")
    summary = run_backfill(
        platform, REGISTRY, [str(tmp_path / "events")], views=VIEWS, dead_letters=dead
    )
    letters = [
        DeadLetter.from_json(json.loads(line))
        for path in glob.glob(dead + "*")
        for line in Path(path).read_text(encoding="utf-8").splitlines()
    ]
    refused = [json.loads(d.raw) for d in letters if d.reason == REASON]
    expected = missing_view_keys(messages)
    assert expected
    assert sorted(body["entity_key"]["business_id"] for body in refused) == sorted(expected)
    assert summary.rejected == len(refused)
    assert summary.dead_letters == dead
