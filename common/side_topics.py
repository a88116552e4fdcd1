"""Dead-letter and late counts per topic, with the latest reasons, for the page.

The streaming job publishes invalid messages to `<topic>-dlq` (reason and detail as
attributes) and events it refused as late to `<topic>-late` (a JSON body naming the
view). `apply` gives each side topic an `-inspect` subscription for people; the page
does not read that one (it would take messages away from whoever inspects them).

The page reads a subscription of its own, `<side topic>-ui`, and never leaves it to
grow: it acknowledges every message it pulls once the message is folded into a small
tally kept under the state dir (counts per reason, the latest few messages), so the
counts survive restarts of the page and the backlog is empty after each refresh. The
subscription is created with a one-day message retention and a one-day expiration
policy: while no page runs, at most a day of messages waits for it, and a subscription
unread for a day is deleted by Pub/Sub itself (the page recreates it when it starts;
what was published while it did not exist is not counted here, and stays in `-inspect`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feature_store.config import PlatformConfig
from feature_store.registry import Registry
from feature_store.resources import STREAM_ACK_DEADLINE_S, dlq_topic, late_topic

log = logging.getLogger(__name__)

UI_SUFFIX = "-ui"
RETENTION_S = 24 * 3600
EXPIRY_S = 24 * 3600
LATEST = 8
_PULL_ROUNDS = 50


def ui_subscription(side_topic: str) -> str:
    return f"{side_topic}{UI_SUFFIX}"


@dataclass(kw_only=True)
class SideTally:
    """What one side topic has received since the page first read it."""

    topic: str
    kind: str  # "dead letters" or "late"
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    latest: list[dict[str, str]] = field(default_factory=list)
    since: str = ""

    def add(self, published: datetime, reason: str, detail: str) -> None:
        self.count += 1
        self.reasons[reason] += 1
        self.latest.insert(
            0, {"published": published.isoformat(), "reason": reason, "detail": detail[:200]}
        )
        del self.latest[LATEST:]

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "kind": self.kind,
            "count": self.count,
            "reasons": dict(self.reasons.most_common()),
            "latest": self.latest,
            "since": self.since,
        }


def reason_of(kind: str, data: bytes, attributes: dict[str, str]) -> tuple[str, str]:
    """(reason, detail) of a dead-letter or late message, as the jobs publish them."""
    if kind == "dead letters":
        reason = attributes.get("dlq_reason") or "no reason attribute"
        return reason, attributes.get("dlq_detail", "")
    try:
        body = json.loads(data)
    except ValueError:
        return "late (unreadable body)", data[:200].decode("utf-8", "replace")
    if not isinstance(body, dict):
        return "late (unreadable body)", str(body)[:200]
    view = body.get("view") or attributes.get("view") or "?"
    detail = f"event {body.get('event_id', '?')} for {body.get('entity_key', '?')}"
    return f"late for {view}", detail


class SideTopics:
    """Pulls the page's side-topic subscriptions into a tally saved under the state dir."""

    def __init__(self, config: PlatformConfig, registry: Registry) -> None:
        self.config = config
        self.sides: list[tuple[str, str]] = []
        for source in registry.sources:
            self.sides.append((dlq_topic(source.topic), "dead letters"))
            self.sides.append((late_topic(source.topic), "late"))
        self.path: Path = config.state_dir / "ui" / f"{config.feast_project}-side-topics.json"
        self._lock = threading.Lock()
        self.tallies = self._load()
        self.errors: dict[str, str] = {}

    def _load(self) -> dict[str, SideTally]:
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            saved = {}
        tallies = {}
        for topic, kind in self.sides:
            old = saved.get(topic, {}) if isinstance(saved, dict) else {}
            tallies[topic] = SideTally(
                topic=topic,
                kind=kind,
                count=int(old.get("count", 0)),
                reasons=Counter(old.get("reasons", {})),
                latest=list(old.get("latest", [])),
                since=str(old.get("since", "")),
            )
        return tallies

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_suffix(".tmp")
        body = {t: tally.as_dict() for t, tally in self.tallies.items()}
        aside.write_text(json.dumps(body, indent=2), encoding="utf-8")
        aside.replace(self.path)

    def ensure_subscriptions(self) -> None:
        """Creates the page's subscriptions that are missing (retention and expiry set)."""
        from google.api_core import exceptions
        from google.cloud import pubsub_v1
        from google.protobuf.duration_pb2 import Duration

        subscriber = pubsub_v1.SubscriberClient()
        try:
            for topic, _ in self.sides:
                request = {
                    "name": self._subscription_path(subscriber, topic),
                    "topic": f"projects/{self.config.project}/topics/{self.config.topic_id(topic)}",
                    "ack_deadline_seconds": STREAM_ACK_DEADLINE_S,
                    "message_retention_duration": Duration(seconds=RETENTION_S),
                    "expiration_policy": {"ttl": Duration(seconds=EXPIRY_S)},
                }
                try:
                    subscriber.create_subscription(request=request)
                    log.info("created subscription %s", request["name"])
                except exceptions.AlreadyExists:
                    pass
                except exceptions.NotFound:
                    self.errors[topic] = f"topic {topic} not found: run `feature-store apply`"
                    continue
                tally = self.tallies[topic]
                tally.since = tally.since or datetime.now(UTC).isoformat()
        finally:
            subscriber.close()
        with self._lock:
            self._save()

    def _subscription_path(self, subscriber: Any, topic: str) -> str:
        return str(
            subscriber.subscription_path(
                self.config.project, self.config.topic_id(ui_subscription(topic))
            )
        )

    def refresh(self) -> list[SideTally]:
        """Pulls and acknowledges everything waiting, folds it in, saves the tally."""
        from google.api_core import exceptions
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        with self._lock:
            try:
                for topic, kind in self.sides:
                    if topic in self.errors:
                        continue
                    try:
                        self._pull(subscriber, topic, kind)
                    except exceptions.GoogleAPICallError as exc:
                        self.errors[topic] = f"cannot read {topic}: {exc.message}"
            finally:
                subscriber.close()
                self._save()
        return list(self.tallies.values())

    def _pull(self, subscriber: Any, topic: str, kind: str) -> None:
        path = self._subscription_path(subscriber, topic)
        for _ in range(_PULL_ROUNDS):
            response = subscriber.pull(
                subscription=path, max_messages=500, timeout=5, return_immediately=True
            )
            if not response.received_messages:
                return
            for received in response.received_messages:
                message = received.message
                reason, detail = reason_of(kind, message.data, dict(message.attributes))
                published = message.publish_time
                when = published if published.tzinfo else published.replace(tzinfo=UTC)
                self.tallies[topic].add(when, reason, detail)
            subscriber.acknowledge(
                subscription=path, ack_ids=[r.ack_id for r in response.received_messages]
            )
