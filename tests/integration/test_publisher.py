"""Publishing simulated messages to the Pub/Sub emulator and pulling them back.

Works on its own against the emulator at PUBSUB_EMULATOR_HOST (127.0.0.1:8085 when
unset); an unreachable emulator fails these tests, it does not skip them.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import pubsub_v1

from feature_store.config import LOCAL_PROJECT
from feature_store.events import REVIEW_TOPIC, TOPICS, USER_TOPIC, DeadLetter, validate
from simulator.publisher import TopicNotFoundError, publish_messages
from simulator.traffic import SimulatedMessage, SimulationConfig, simulate

pytestmark = pytest.mark.integration

EMULATOR = "127.0.0.1:8085"
ACK_DEADLINE_S = 60
PULL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PubSub:
    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient
    topics: dict[str, str]  # contract topic -> this module's topic id
    subscriptions: dict[str, str]  # contract topic -> subscription path


@pytest.fixture(scope="module")
def pubsub() -> Iterator[PubSub]:
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ.setdefault("PUBSUB_EMULATOR_HOST", EMULATOR)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    suffix = uuid.uuid4().hex[:10]
    topics = {topic: f"{topic}-it-{suffix}" for topic in TOPICS}
    subscriptions = {
        topic: subscriber.subscription_path(LOCAL_PROJECT, f"{name}-sub")
        for topic, name in topics.items()
    }
    created: list[str] = []
    try:
        for topic, name in topics.items():  # fails (not skips) when the emulator is away
            path = publisher.topic_path(LOCAL_PROJECT, name)
            publisher.create_topic(name=path, timeout=10)
            created.append(path)
            subscriber.create_subscription(
                name=subscriptions[topic],
                topic=path,
                ack_deadline_seconds=ACK_DEADLINE_S,
                timeout=10,
            )
        yield PubSub(publisher, subscriber, topics, subscriptions)
    finally:
        for path in subscriptions.values():  # best-effort cleanup of a shared emulator
            with contextlib.suppress(Exception):
                subscriber.delete_subscription(subscription=path, timeout=10)
        for path in created:
            with contextlib.suppress(Exception):
                publisher.delete_topic(topic=path, timeout=10)
        subscriber.close()
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)


def pull_all(pubsub: PubSub, topic: str, expected: int) -> list[tuple[bytes, dict[str, str]]]:
    received: list[tuple[bytes, dict[str, str]]] = []
    deadline = time.monotonic() + PULL_TIMEOUT_S
    while len(received) < expected and time.monotonic() < deadline:
        response = pubsub.subscriber.pull(
            subscription=pubsub.subscriptions[topic], max_messages=1000, timeout=10
        )
        if not response.received_messages:
            continue
        for item in response.received_messages:
            received.append((bytes(item.message.data), dict(item.message.attributes)))
        pubsub.subscriber.acknowledge(
            subscription=pubsub.subscriptions[topic],
            ack_ids=[item.ack_id for item in response.received_messages],
        )
    return received


def _key(raw: bytes, attributes: dict[str, str]) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    return raw, tuple(sorted(attributes.items()))


def test_published_messages_come_back_intact(pubsub: PubSub) -> None:
    config = SimulationConfig(
        events=3_000,
        users=300,
        businesses=40,
        seed=21,
        bad_share=0.05,
        duplicate_share=0.05,
        late_share=0.03,
        attribute_defects=True,
    )
    messages = list(simulate(config))
    stats = publish_messages(LOCAL_PROJECT, messages, topic_ids=pubsub.topics)
    assert stats.published == len(messages)
    assert stats.failed == 0
    for topic in (REVIEW_TOPIC, USER_TOPIC):
        sent = [m for m in messages if m.topic == topic]
        assert stats.by_topic[topic] == len(sent)
        received = pull_all(pubsub, topic, len(sent))
        assert Counter(_key(raw, attrs) for raw, attrs in received) == Counter(
            _key(m.raw, m.attributes) for m in sent
        )
        defects = {_key(m.raw, m.attributes): m.defect for m in sent}
        for raw, attributes in received:  # attribute defects survive the trip too
            result = validate(topic, raw, attributes)
            defect = defects[_key(raw, attributes)]
            if defect is None:
                assert not isinstance(result, DeadLetter), result
            else:
                assert isinstance(result, DeadLetter)
                assert result.reason == defect
        assert any(d == "attribute_mismatch" for d in defects.values())


def test_realtime_publishing_stamps_events_now(pubsub: PubSub) -> None:
    config = SimulationConfig(events=400, users=50, businesses=10, seed=4)
    messages: list[SimulatedMessage] = list(simulate(config))
    before = datetime.now(UTC)
    publish_messages(LOCAL_PROJECT, messages, rate=2_000, realtime=True, topic_ids=pubsub.topics)
    after = datetime.now(UTC)
    assert after - before >= timedelta(seconds=0.15)  # paced: 400 messages at 2,000/s
    for topic in TOPICS:
        received = pull_all(pubsub, topic, sum(m.topic == topic for m in messages))
        assert received
        for raw, attributes in received:
            event = validate(topic, raw, attributes)
            assert not isinstance(event, DeadLetter)
            assert before <= event.event_time <= after


def test_a_missing_topic_is_a_clear_error(pubsub: PubSub) -> None:
    missing = f"review-events-missing-{uuid.uuid4().hex[:8]}"
    messages = list(simulate(SimulationConfig(events=20, users=5, businesses=2)))
    with pytest.raises(TopicNotFoundError) as caught:
        publish_messages(
            LOCAL_PROJECT, messages, topic_ids={REVIEW_TOPIC: missing, USER_TOPIC: missing}
        )
    assert missing in str(caught.value)
    assert "feature-store apply" in str(caught.value)
