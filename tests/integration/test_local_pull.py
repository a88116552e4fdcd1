"""The local runner's pulls against the Pub/Sub emulator: an empty subscription answers
at once (the emulator holds a plain empty pull for half a second), and every message
published is pulled exactly once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1

from feature_store.config import PlatformConfig
from jobs.local_runner import EmptyPulls, _WidePull

pytestmark = pytest.mark.integration

HELD_S = 0.4  # the emulator holds an empty plain pull 0.5 s
PROMPT_S = 0.3  # well apart from the held 0.5 s, with room for a loaded machine


@pytest.fixture(scope="module")
def subscription(stack: PlatformConfig) -> Iterator[tuple[pubsub_v1.PublisherClient, str, str]]:
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    name = f"local-pull-{uuid.uuid4().hex[:10]}"
    topic = publisher.topic_path(stack.project, name)
    sub = subscriber.subscription_path(stack.project, name)
    publisher.create_topic(name=topic, timeout=10)
    subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=60, timeout=10)
    try:
        yield publisher, topic, sub
    finally:
        subscriber.delete_subscription(subscription=sub, timeout=10)
        publisher.delete_topic(topic=topic, timeout=10)
        subscriber.close()


def _timed_pull(client: object, sub: str) -> tuple[list[str], float, list[str]]:
    began = time.monotonic()
    response = client.pull(subscription=sub, max_messages=10, timeout=30)  # type: ignore[attr-defined]
    took = time.monotonic() - began
    data = [m.message.data.decode() for m in response.received_messages]
    return data, took, [m.ack_id for m in response.received_messages]


def test_empty_pull_is_prompt_and_messages_come_once(
    subscription: tuple[pubsub_v1.PublisherClient, str, str],
) -> None:
    publisher, topic, sub = subscription
    subscriber = pubsub_v1.SubscriberClient()
    wide = _WidePull(subscriber, 1000, EmptyPulls())
    try:
        _, held, _ = _timed_pull(subscriber, sub)  # the emulator's own wait, for contrast
        assert held >= HELD_S
        data, took, _ = _timed_pull(wide, sub)
        assert (data, took < PROMPT_S) == ([], True)

        sent = [f"m{i}" for i in range(25)]
        for future in [publisher.publish(topic, m.encode()) for m in sent]:
            future.result(timeout=10)
        pulled: list[str] = []
        deadline = time.monotonic() + 10
        while len(pulled) < len(sent) and time.monotonic() < deadline:
            data, _, ack_ids = _timed_pull(wide, sub)
            if ack_ids:
                wide.acknowledge(subscription=sub, ack_ids=ack_ids)
            pulled += data
        assert sorted(pulled) == sorted(sent)
        data, took, _ = _timed_pull(wide, sub)  # all acknowledged: nothing comes again
        assert (data, took < PROMPT_S) == ([], True)
    finally:
        subscriber.close()
