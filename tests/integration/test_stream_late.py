"""Lateness in the stream: an event within the allowed lateness of what its key has seen
is exact online; one later than that goes to the late topic, and the online value does
not count it (the nightly backfill will)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud import pubsub_v1

from common.metrics import local_counts, reset_local
from feature_store.config import PlatformConfig
from feature_store.events import Event, contract_for
from feature_store.reference import REGISTRY, REVIEW_EVENTS
from feature_store.resources import dlq_topic, inspect_subscription, late_topic
from jobs.backfill import plans_for
from jobs.online_sink import online_sink
from jobs.retrieval import get_online
from jobs.runner import make_pipeline
from jobs.stream import StreamSettings, build_stream
from simulator.publisher import publish_messages
from tests.integration.streams import wait_settled
from tests.integration.test_loop import _message

pytestmark = pytest.mark.integration


def _review(event_id: str, moment: datetime) -> Event:
    return contract_for(REVIEW_EVENTS).event(
        event_id=event_id,
        event_type="review_created",
        event_time=moment,
        review_id=f"r-{event_id}",
        user_id="u-late",
        business_id="b-late",
        rating=4,
        text="Lovely place, friendly people.",
    )


def _wait_for(counter: str, value: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while local_counts().get(counter, 0) < value and time.monotonic() < deadline:
        time.sleep(0.5)
    assert local_counts().get(counter, 0) >= value, local_counts()


def _start_stream(platform: PlatformConfig) -> tuple[Any, dict[str, str]]:
    """The streaming job on `user_review_stats`, no warm start, 60 s of allowed lateness;
    with the topic ids to publish to."""
    plans, _ = plans_for(REGISTRY, ["user_review_stats"])
    settings = StreamSettings(allowed_lateness_s=60, warm_start=False, views=("user_review_stats",))
    reset_local()
    pipeline = make_pipeline([], streaming=True)
    build_stream(pipeline, platform, REGISTRY, plans, settings, online_sink(platform))
    topics = {t: platform.topic_id(t) for t in ("review-events", "user-events")}
    return pipeline.run(), topics


def _pull(platform: PlatformConfig, side_topic: str) -> list[Any]:
    """Up to ten messages from the inspection subscription of `side_topic`."""
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(
        platform.project, platform.topic_id(inspect_subscription(side_topic))
    )
    response = subscriber.pull(subscription=path, max_messages=10, timeout=30)
    subscriber.close()
    return [m.message for m in response.received_messages]


def test_late_events_leave_through_the_late_topic(platform: PlatformConfig) -> None:
    job, topics = _start_stream(platform)
    now = datetime.now(UTC)
    try:
        time.sleep(3)
        publish_messages(platform.project, [_message(_review("on-time", now))], topic_ids=topics)
        _wait_for("events_aggregated", 1)
        publish_messages(
            platform.project,
            [
                _message(_review("within-lateness", now - timedelta(seconds=30))),
                _message(_review("too-late", now - timedelta(hours=2))),
            ],
            topic_ids=topics,
        )
        _wait_for("events_late", 1)
        _wait_for("events_aggregated", 2)
        wait_settled(120)  # everything read, aggregated and written
        [row] = get_online(
            platform, ["user_review_stats:review_count_24h"], [{"user_id": "u-late"}]
        )
    finally:
        job.cancel()
    assert row["user_review_stats__review_count_24h"] == 2
    assert local_counts()["events_late"] == 1
    bodies = [json.loads(m.data) for m in _pull(platform, late_topic("review-events"))]
    assert [(b["event_id"], b["view"]) for b in bodies] == [("too-late", "user_review_stats")]


def test_a_future_dated_event_is_a_dead_letter_and_freezes_nothing(
    platform: PlatformConfig,
) -> None:
    """One event from a producer whose clock is far ahead must not make every later event
    of its key late (lateness is measured from a key's newest event)."""
    job, topics = _start_stream(platform)
    now = datetime.now(UTC)
    ahead = _review("a-day-ahead", now + timedelta(days=1))
    broken = _review("broken-clock", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    try:
        time.sleep(3)
        publish_messages(platform.project, [_message(ahead), _message(broken)], topic_ids=topics)
        _wait_for("events_invalid", 2)
        publish_messages(
            platform.project,
            [_message(_review("normal-1", now)), _message(_review("normal-2", now))],
            topic_ids=topics,
        )
        _wait_for("events_aggregated", 2)
        wait_settled(120)
        [row] = get_online(
            platform, ["user_review_stats:review_count_24h"], [{"user_id": "u-late"}]
        )
    finally:
        job.cancel()
    assert row["user_review_stats__review_count_24h"] == 2
    assert local_counts().get("events_late", 0) == 0
    reasons = {
        m.attributes.get("event_id", ""): m.attributes.get("dlq_reason")
        for m in _pull(platform, dlq_topic("review-events"))
    }
    assert reasons == {
        "a-day-ahead": "timestamp_out_of_range",
        "broken-clock": "timestamp_out_of_range",
    }
