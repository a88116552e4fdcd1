"""The local runner's pulls against the Pub/Sub emulator: an empty subscription answers
at once (the emulator holds a plain empty pull for half a second), and every message
published is pulled exactly once; a pipeline's sink runs on a thread of its own."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import apache_beam as beam
import pytest
from apache_beam.io.gcp.pubsub import ReadFromPubSub
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from google.cloud import pubsub_v1

from feature_store.config import PlatformConfig
from jobs.local_runner import EmptyPulls, LocalStreamingRunner, _WidePull

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


SEEN: list[tuple[str, str, int]] = []  # (step, message, thread)


class _Record(beam.DoFn):
    def __init__(self, step: str) -> None:
        self.step = step

    def process(self, data: bytes) -> Iterator[bytes]:
        SEEN.append((self.step, data.decode(), threading.get_ident()))
        yield data


def test_a_sink_runs_on_its_own_thread_and_sees_every_message_once(
    subscription: tuple[pubsub_v1.PublisherClient, str, str],
) -> None:
    """The sink (a ParDo whose output nothing reads) runs on the runner's second thread,
    the step before it on the first; every message reaches both, once."""
    publisher, topic, sub = subscription
    SEEN.clear()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    pipeline = beam.Pipeline(runner=LocalStreamingRunner(), options=options)
    _ = (
        pipeline
        | ReadFromPubSub(subscription=sub)
        | "Step" >> beam.ParDo(_Record("step"))
        | "Sink" >> beam.ParDo(_Record("sink"))
    )
    result = pipeline.run()
    try:
        sent = [f"s{i}" for i in range(40)]
        for batch in (sent[:20], sent[20:]):
            for future in [publisher.publish(topic, m.encode()) for m in batch]:
                future.result(timeout=10)
            time.sleep(0.3)
        deadline = time.monotonic() + 30
        while sum(step == "sink" for step, _, _ in SEEN) < len(sent):
            assert time.monotonic() < deadline, f"sink saw {len(SEEN)} of {2 * len(sent)}"
            time.sleep(0.05)
    finally:
        result.cancel()
    for step in ("step", "sink"):
        assert sorted(m for s, m, _ in SEEN if s == step) == sorted(sent)
    step_threads = {t for s, _, t in SEEN if s == "step"}
    sink_threads = {t for s, _, t in SEEN if s == "sink"}
    assert len(sink_threads) == 1 and not sink_threads & step_threads
