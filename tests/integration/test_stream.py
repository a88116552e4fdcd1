"""The streaming job on the emulators: simulated events published to Pub/Sub land in Redis
and Bigtable, values change when events leave a window, invalid messages reach the
dead-letter topic, and the online values equal the batch backfill's point-in-time values
(the parity a consistency job checks)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apache_beam.runners.runner import PipelineState
from google.cloud import pubsub_v1

from common.metrics import local_counts, reset_local
from feature_store.config import PlatformConfig
from feature_store.reference import REGISTRY
from feature_store.resources import dlq_topic, inspect_subscription
from jobs.backfill import plans_for, run_backfill
from jobs.consistency import check_consistency
from jobs.online_sink import online_sink
from jobs.runner import make_pipeline
from jobs.stream import StreamSettings, build_stream
from simulator.publisher import publish_messages
from simulator.traffic import MessageKind, SimulationConfig, simulate, write_jsonl
from tests.integration.checks import VIEWS, check_online, us
from tests.integration.streams import wait_settled

pytestmark = pytest.mark.integration


def _wait_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


@pytest.fixture(scope="module")
def streamed(platform: PlatformConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs the stream over events whose 1 h windows end while it runs, once it has read
    them all: an event that reaches its key after one of the key's windows ended there is
    late (the nightly backfill makes it exact), which this test does not expect."""
    reset_local()
    plans, _ = plans_for(REGISTRY, VIEWS)
    pipeline = make_pipeline([], streaming=True)
    build_stream(pipeline, platform, REGISTRY, plans, StreamSettings(), online_sink(platform))
    result = pipeline.run()
    try:
        time.sleep(5)  # the job subscribes
        now = datetime.now(UTC)
        config = SimulationConfig(
            seed=11,
            start=now - timedelta(hours=1) + timedelta(seconds=45),
            duration=timedelta(seconds=10),
            events=500,
            users=12,
            businesses=5,
            bad_share=0.05,
            duplicate_share=0.05,
        )
        messages = list(simulate(config))
        topics = {t: platform.topic_id(t) for t in ("review-events", "user-events")}
        publish_messages(platform.project, messages, rate=400, topic_ids=topics)
        last_expiry = config.start + config.duration + timedelta(hours=1)
        _wait_until(last_expiry + timedelta(seconds=5))  # by the wall clock
        # The rows are checked where the job proved them complete, once it settled (on a
        # busy machine it can be well behind the wall clock); after that time, no row is
        # written by anyone.
        at = wait_settled(300.0, past=last_expiry)
        assert result.state == PipelineState.RUNNING, f"the stream stopped: {result.state}"
    finally:
        result.cancel()
    counts = local_counts()
    print("the stream's counters:", counts)  # shown when a test fails
    assert counts.get("events_received") == len(messages), "not every message was read"
    late = counts.get("events_late", 0)
    assert not late, f"{late} events reached the stream after their key's 1 h window ended"
    assert at is not None, "the stream proved no event time"
    assert at >= last_expiry, f"the stream's rows are complete only to {at}"
    folder = tmp_path_factory.mktemp("streamed")
    write_jsonl(messages, folder)
    return {"messages": messages, "folder": folder, "at": at}


def test_online_values_equal_the_definition_after_windows_ended(
    platform: PlatformConfig, streamed: dict[str, Any]
) -> None:
    rows = check_online(platform, streamed["messages"], us(streamed["at"]))
    expired = sum(
        row["user_review_stats__review_count_1h"] == 0
        for (view, _), row in rows.items()
        if view == "user_review_stats" and row["user_review_stats__review_count_24h"]
    )
    assert expired > 0  # 1 h counts fell to 0 by timers alone: no event arrived after


def test_invalid_messages_reach_the_dead_letter_topic(
    platform: PlatformConfig, streamed: dict[str, Any]
) -> None:
    malformed = [
        m
        for m in streamed["messages"]
        if m.kind is MessageKind.MALFORMED and m.topic == "review-events"
    ]
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(
        platform.project, platform.topic_id(inspect_subscription(dlq_topic("review-events")))
    )
    received: dict[bytes, dict[str, str]] = {}
    deadline = time.monotonic() + 30
    while len(received) < len(malformed) and time.monotonic() < deadline:
        response = subscriber.pull(subscription=path, max_messages=100, timeout=10)
        for item in response.received_messages:
            received[item.message.data] = dict(item.message.attributes)
        if response.received_messages:
            subscriber.acknowledge(
                subscription=path, ack_ids=[r.ack_id for r in response.received_messages]
            )
    subscriber.close()
    assert set(received) == {m.raw for m in malformed}
    for message in malformed:
        assert received[message.raw]["dlq_reason"] == message.defect


def test_stream_and_backfill_agree_for_every_entity(
    platform: PlatformConfig, streamed: dict[str, Any]
) -> None:
    run_backfill(
        platform,
        REGISTRY,
        [str(Path(streamed["folder"]))],
        views=VIEWS,
        online=False,
        end=streamed["at"],
    )
    for store in platform.online_stores:
        report = check_consistency(platform, REGISTRY, VIEWS, streamed["at"], store=store)
        assert report.entities > 0
        assert report.mismatches == [], report.as_dict()
