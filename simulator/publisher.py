"""Publishing event messages to the Pub/Sub topics (the emulator locally).

`publish_messages` takes any iterable of `SimulatedMessage`s (the simulator's, or a
replay), publishes each raw body with its attributes, paces them with a rate limiter when
asked, and checks every publish future. It creates nothing: the topics belong to
`feature-store apply`, and a missing one is an error that says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1 import types

from feature_store.errors import ConfigError, FeatureStoreError
from simulator.traffic import Retimer, SimulatedMessage

logger = logging.getLogger(__name__)

# Large batches for throughput; flow control bounds what waits in memory.
BATCH_SETTINGS = types.BatchSettings(max_messages=1000, max_bytes=4_000_000, max_latency=0.05)
FLOW_CONTROL = types.PublishFlowControl(
    message_limit=20_000,
    byte_limit=64_000_000,
    limit_exceeded_behavior=types.LimitExceededBehavior.BLOCK,
)
TOPIC_CHECK_TIMEOUT_S = 30.0


class TopicNotFoundError(FeatureStoreError, LookupError):
    """A topic to publish to does not exist."""


class PublishError(FeatureStoreError):
    """Some messages could not be published; `stats` says how many went through."""

    def __init__(self, message: str, stats: PublishStats) -> None:
        super().__init__(message)
        self.stats = stats


@dataclass(frozen=True)
class PublishStats:
    published: int
    failed: int
    by_topic: Mapping[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        """Messages published per second."""
        return self.published / self.elapsed_s if self.elapsed_s > 0 else 0.0


class RateLimiter:
    """Paces `wait()` calls to `rate` per second on average.

    Calls are scheduled `1/rate` apart; a caller that falls behind catches up without
    sleeping, but never by more than a second's worth of calls.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            msg = f"rate must be positive, got {rate}"
            raise ConfigError(msg)
        self._interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._next is None or now - self._next > 1.0:
            self._next = now
        if self._next > now:
            self._sleep(self._next - now)
        self._next += self._interval


class _Outcomes:
    """Counts publish futures as they resolve (callbacks run on the client's threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[futures.Future[Any]] = set()
        self.published: Counter[str] = Counter()
        self.failed = 0
        self.first_error: BaseException | None = None

    def track(self, future: futures.Future[Any], topic: str) -> None:
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(lambda done: self._done(done, topic))

    def _done(self, future: futures.Future[Any], topic: str) -> None:
        error = future.exception()
        with self._lock:
            self._pending.discard(future)
            if error is None:
                self.published[topic] += 1
                return
            self.failed += 1
            if self.first_error is None:
                self.first_error = error

    def wait(self) -> None:
        with self._lock:
            pending = list(self._pending)
        futures.wait(pending)


def _topic_path(client: pubsub_v1.PublisherClient, project: str, topic_id: str) -> str:
    path: str = client.topic_path(project, topic_id)
    try:
        client.get_topic(topic=path, timeout=TOPIC_CHECK_TIMEOUT_S)
    except exceptions.NotFound:
        msg = f"Pub/Sub topic `{path}` does not exist; run `feature-store apply` to create it"
        raise TopicNotFoundError(msg) from None
    return path


def publish_messages(
    project: str,
    messages: Iterable[SimulatedMessage],
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    realtime: bool = False,
    topic_ids: Mapping[str, str] | None = None,
    client: pubsub_v1.PublisherClient | None = None,
    pace: Callable[[int], None] | None = None,
) -> PublishStats:
    """Publish every message (raw body and attributes) to its topic in `project`.

    `rate` caps messages per second; `realtime` rewrites event times to the wall clock
    as messages go out; `topic_ids` maps a message's topic to another topic id (tests);
    `progress` is called with 1 per message sent; `pace`, with the number sent so far,
    before each message (it may block: a consumer's back-pressure). Raises
    `TopicNotFoundError` before publishing to a missing topic, and `PublishError` if any
    publish failed.
    """
    own_client = client is None
    publisher = client or pubsub_v1.PublisherClient(
        batch_settings=BATCH_SETTINGS,
        publisher_options=types.PublisherOptions(flow_control=FLOW_CONTROL),
    )
    limiter = RateLimiter(rate) if rate else None
    retime = Retimer() if realtime else None
    paths: dict[str, str] = {}
    outcomes = _Outcomes()
    started = time.monotonic()
    try:
        for sent, message in enumerate(messages):
            if pace is not None:
                pace(sent)
            if message.topic not in paths:
                topic_id = (topic_ids or {}).get(message.topic, message.topic)
                paths[message.topic] = _topic_path(publisher, project, topic_id)
            if limiter is not None:
                limiter.wait()
            if retime is not None:
                message = retime(message, datetime.now(UTC))  # noqa: PLW2901
            future = publisher.publish(paths[message.topic], message.raw, **message.attributes)
            outcomes.track(future, message.topic)
            if progress is not None:
                progress(1)
    finally:
        outcomes.wait()
        if own_client:
            publisher.stop()
    stats = PublishStats(
        published=sum(outcomes.published.values()),
        failed=outcomes.failed,
        by_topic=dict(outcomes.published),
        elapsed_s=time.monotonic() - started,
    )
    logger.info("published %d messages in %.1f s", stats.published, stats.elapsed_s)
    if outcomes.failed:
        msg = f"{outcomes.failed} messages failed to publish; the first: {outcomes.first_error!r}"
        raise PublishError(msg, stats)
    return stats
