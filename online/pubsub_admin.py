"""Create the Pub/Sub topics and subscriptions the sources need (idempotent)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from google.api_core import exceptions
from google.cloud import pubsub_v1

from feature_store.registry import Registry
from feature_store.resources import STREAM_ACK_DEADLINE_S, Change, topics

log = logging.getLogger(__name__)


def pubsub_changes(
    project: str, registry: Registry, *, apply: bool, prefix: str = ""
) -> list[Change]:
    """What exists and what must be created; creates it when `apply`. `prefix` is put
    before every topic and subscription id (several platforms on one project)."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    changes: list[Change] = []
    try:
        for spec in topics(registry):
            path = publisher.topic_path(project, prefix + spec.name)
            changes.append(
                _ensure(
                    partial(publisher.get_topic, topic=path),
                    partial(publisher.create_topic, name=path),
                    "topic",
                    prefix + spec.name,
                    apply,
                )
            )
            for sub in spec.subscriptions:
                sub_path = subscriber.subscription_path(project, prefix + sub)
                changes.append(
                    _ensure(
                        partial(subscriber.get_subscription, subscription=sub_path),
                        partial(
                            subscriber.create_subscription,
                            name=sub_path,
                            topic=path,
                            ack_deadline_seconds=STREAM_ACK_DEADLINE_S,
                        ),
                        "subscription",
                        prefix + sub,
                        apply,
                    )
                )
    finally:
        subscriber.close()
    return changes


def _ensure(
    get: Callable[[], object], create: Callable[[], object], kind: str, name: str, apply: bool
) -> Change:
    try:
        get()
        return Change(kind, name, "exists")
    except exceptions.NotFound:
        if apply:
            try:
                create()
            except exceptions.AlreadyExists:
                return Change(kind, name, "exists")
            log.info("created %s %s", kind, name)
        return Change(kind, name, "create")


def drain(project: str, subscription: str, *, max_seconds: float = 30.0) -> int:
    """Acknowledge everything waiting on a subscription (a demo's clean start)."""
    import time

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    drained, deadline = 0, time.monotonic() + max_seconds
    try:
        while time.monotonic() < deadline:
            response = subscriber.pull(
                subscription=path, max_messages=1000, timeout=5, return_immediately=True
            )
            if not response.received_messages:
                break
            subscriber.acknowledge(
                subscription=path, ack_ids=[r.ack_id for r in response.received_messages]
            )
            drained += len(response.received_messages)
    finally:
        subscriber.close()
    return drained
