"""Pub/Sub in and out of the streaming job: the event subscriptions, the dead-letter and
late topics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage, ReadFromPubSub, WriteToPubSub

from common.beam_types import PColl, partition_fn
from common.stages import DEAD_LETTER_HINTS, IO_HINTS, Stage
from feature_store.events import DeadLetter
from feature_store.resources import dlq_topic, late_topic, stream_subscription

MAX_ATTRIBUTE = 1024


def _message(msg: PubsubMessage, topic: str) -> tuple[str, bytes, dict[str, str], int | None]:
    publish = msg.publish_time
    publish_us = int(publish.timestamp() * 1_000_000) if publish is not None else None
    return topic, msg.data or b"", dict(msg.attributes or {}), publish_us


class ReadEvents(Stage):
    """(topic, raw bytes, attributes, publish µs) from each topic's stream subscription."""

    RESOURCE_HINTS = IO_HINTS

    def __init__(self, project: str, topics: Sequence[str], prefix: str = "") -> None:
        super().__init__()
        self.project, self.topics, self.prefix = project, list(topics), prefix

    def expand(self, pbegin: beam.pvalue.PBegin) -> PColl:
        parts = []
        for topic in self.topics:
            sub_id = self.prefix + stream_subscription(topic)
            sub = f"projects/{self.project}/subscriptions/{sub_id}"
            parts.append(
                pbegin
                | f"Read {topic}" >> ReadFromPubSub(subscription=sub, with_attributes=True)
                | f"Tag {topic}" >> beam.Map(_message, topic)
            )
        events: PColl = parts | "AllEvents" >> beam.Flatten()
        return events


def dead_letter_message(letter: DeadLetter) -> PubsubMessage:
    """The raw bytes untouched; the reason and source topic as attributes."""
    attributes = {k: v[:MAX_ATTRIBUTE] for k, v in letter.attributes.items()}
    attributes.update(
        {
            "dlq_reason": str(letter.reason),
            "dlq_detail": letter.detail[:MAX_ATTRIBUTE],
            "source_topic": letter.topic,
        }
    )
    return PubsubMessage(data=letter.raw, attributes=attributes)


def late_message(item: tuple[str, str, dict[str, Any]]) -> PubsubMessage:
    view, key, record = item
    body = {"view": view, "entity_key": key, **record}
    return PubsubMessage(
        data=json.dumps(body, default=str).encode(),
        attributes={"event_id": str(record["event_id"]), "view": view},
    )


class PublishPerTopic(Stage):
    """Sends each element to `<its topic>` side topic as a PubsubMessage."""

    RESOURCE_HINTS = DEAD_LETTER_HINTS

    def __init__(self, project: str, topics: Sequence[str], kind: str, prefix: str = "") -> None:
        super().__init__()
        self.project, self.topics, self.kind, self.prefix = project, list(topics), kind, prefix

    def expand(self, items: PColl) -> beam.pvalue.PDone:
        side = dlq_topic if self.kind == "dlq" else late_topic
        convert = dead_letter_message if self.kind == "dlq" else late_message
        by_topic = partition_fn(lambda item, _n: self.topics.index(_topic_of(item)))
        parts = items | "ByTopic" >> beam.Partition(by_topic, len(self.topics))
        for topic, part in zip(self.topics, parts, strict=True):
            _ = (
                part
                | f"ToMessage {topic}" >> beam.Map(convert)
                | f"Publish {side(topic)}"
                >> WriteToPubSub(
                    f"projects/{self.project}/topics/{self.prefix}{side(topic)}",
                    with_attributes=True,
                )
            )
        return beam.pvalue.PDone(items.pipeline)


def _topic_of(item: Any) -> str:
    if isinstance(item, DeadLetter):
        return item.topic
    return str(item[2]["topic"])
