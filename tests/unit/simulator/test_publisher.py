"""The publisher with a fake Pub/Sub client: attributes, topics, futures, pacing."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core import exceptions

from feature_store.errors import ConfigError
from feature_store.events import parse_event
from simulator.publisher import (
    PublishError,
    PublishStats,
    RateLimiter,
    TopicNotFoundError,
    publish_messages,
)
from simulator.traffic import MessageKind, SimulatedMessage, SimulationConfig, simulate


class FakeClient:
    """Records publishes; topics in `missing` do not exist; `fail` bodies fail."""

    def __init__(self, missing: set[str] = frozenset(), fail: bytes | None = None) -> None:  # type: ignore[assignment]
        self.missing = missing
        self.fail = fail
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.checked: list[str] = []

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def get_topic(self, *, topic: str, timeout: float) -> None:
        self.checked.append(topic)
        if topic in self.missing:
            raise exceptions.NotFound(topic)

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        self.published.append((topic, data, attributes))
        future: Future[str] = Future()
        if data == self.fail:
            future.set_exception(exceptions.InternalServerError("boom"))
        else:
            future.set_result(str(len(self.published)))
        return future


@pytest.fixture(scope="module")
def messages() -> list[SimulatedMessage]:
    config = SimulationConfig(
        events=2_000,
        users=200,
        businesses=20,
        bad_share=0.05,
        duplicate_share=0.05,
        late_share=0.05,
        attribute_defects=True,
    )
    return list(simulate(config))


def test_every_message_goes_out_with_its_attributes(messages: list[SimulatedMessage]) -> None:
    client = FakeClient()
    ticks: list[int] = []
    stats = publish_messages("p", messages, progress=ticks.append, client=client)  # type: ignore[arg-type]
    assert client.published == [
        (f"projects/p/topics/{m.topic}", m.raw, m.attributes) for m in messages
    ]
    assert sorted(client.checked) == [
        "projects/p/topics/review-events",
        "projects/p/topics/user-events",
    ]
    assert stats.published == len(messages) and stats.failed == 0
    assert stats.by_topic == {
        t: sum(m.topic == t for m in messages) for t in ("review-events", "user-events")
    }
    assert sum(ticks) == len(messages)


def test_topic_ids_rename_the_topics(messages: list[SimulatedMessage]) -> None:
    client = FakeClient()
    names = {"review-events": "r-test", "user-events": "u-test"}
    publish_messages("p", messages[:50], topic_ids=names, client=client)  # type: ignore[arg-type]
    assert {t for t, _, _ in client.published} <= {
        "projects/p/topics/r-test",
        "projects/p/topics/u-test",
    }


def test_a_missing_topic_is_named_and_nothing_is_sent_to_it(
    messages: list[SimulatedMessage],
) -> None:
    client = FakeClient(missing={"projects/p/topics/review-events"})
    with pytest.raises(TopicNotFoundError) as caught:
        publish_messages("p", messages, client=client)  # type: ignore[arg-type]
    assert "projects/p/topics/review-events" in str(caught.value)
    assert "feature-store apply" in str(caught.value)
    assert all(topic.endswith("user-events") for topic, _, _ in client.published)


def test_failed_futures_are_reported(messages: list[SimulatedMessage]) -> None:
    client = FakeClient(fail=messages[3].raw)
    with pytest.raises(PublishError) as caught:
        publish_messages("p", messages, client=client)  # type: ignore[arg-type]
    failures = sum(m.raw == messages[3].raw for m in messages)
    assert caught.value.stats.failed == failures
    assert caught.value.stats.published == len(messages) - failures
    assert "boom" in str(caught.value)


def test_realtime_rewrites_event_times_to_now(messages: list[SimulatedMessage]) -> None:
    client = FakeClient()
    before = datetime.now(UTC)
    publish_messages("p", messages[:300], realtime=True, client=client)  # type: ignore[arg-type]
    after = datetime.now(UTC)
    for (_, raw, attributes), original in zip(client.published, messages[:300], strict=True):
        if original.kind == MessageKind.MALFORMED:
            assert raw == original.raw
            continue
        event = parse_event(original.topic, raw, attributes)
        if original.kind == MessageKind.LATE:
            assert event.event_time < before - timedelta(hours=1)
        else:
            assert before <= event.event_time <= after
    assert any(m.kind == MessageKind.LATE for m in messages[:300])


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def test_rate_limiter_spaces_calls() -> None:
    clock = FakeClock()
    limiter = RateLimiter(50.0, clock=clock, sleep=clock.sleep)
    for _ in range(101):
        limiter.wait()
    assert clock.now - 100.0 == pytest.approx(2.0)  # 100 intervals of 20 ms


def test_rate_limiter_catches_up_but_not_beyond_a_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)
    limiter.wait()
    clock.now += 0.5  # the caller was busy for five intervals
    for _ in range(5):
        limiter.wait()
    assert clock.slept == pytest.approx(0.0)
    clock.now += 60.0  # a long stall does not earn a burst of 600 calls
    for _ in range(3):
        limiter.wait()
    assert clock.slept == pytest.approx(0.2)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        RateLimiter(0.0)


def test_stats_rate() -> None:
    assert PublishStats(published=500, failed=0, elapsed_s=2.0).rate == 250.0


def test_pace_is_asked_before_each_message_with_the_count_sent(
    messages: list[SimulatedMessage],
) -> None:
    client = FakeClient()
    asked: list[tuple[int, int]] = []
    publish_messages(
        "p",
        messages[:20],
        client=client,  # type: ignore[arg-type]
        pace=lambda sent: asked.append((sent, len(client.published))),
    )
    assert asked == [(i, i) for i in range(20)]  # before the i-th, i are out
