"""Both jobs' counters reconcile on real runs: stream `received = valid + invalid +
duplicates` (late and rejected apart), backfill `lines = valid + invalid + duplicates`,
each term checked against what the simulator says it sent."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.metrics import reset_local
from feature_store.config import PlatformConfig
from feature_store.reference import REGISTRY
from jobs.backfill import plans_for, run_backfill
from jobs.online_sink import online_sink
from jobs.runner import make_pipeline
from jobs.stream import StreamSettings, build_stream, collect
from simulator.publisher import publish_messages
from simulator.traffic import MessageKind, SimulationConfig, simulate, write_jsonl
from tests.integration.checks import VIEWS

pytestmark = pytest.mark.integration


def traffic(seed: int, start: datetime, duration: timedelta) -> list[Any]:
    config = SimulationConfig(
        seed=seed,
        start=start,
        duration=duration,
        events=300,
        users=10,
        businesses=4,
        bad_share=0.05,
        duplicate_share=0.05,
        late_share=0.0,
    )
    return list(simulate(config))


def kinds(messages: list[Any]) -> Counter[MessageKind]:
    return Counter(m.kind for m in messages)


def test_backfill_lines_reconcile(platform: PlatformConfig, tmp_path: Any) -> None:
    messages = traffic(41, datetime.now(UTC) - timedelta(days=1), timedelta(hours=20))
    write_jsonl(messages, tmp_path)
    summary = run_backfill(platform, REGISTRY, [str(tmp_path)], views=VIEWS, online=False)
    parts = summary.reconciliation
    sent = kinds(messages)
    assert parts["lines"] == len(messages)
    assert parts["invalid"] == sent[MessageKind.MALFORMED]
    assert parts["duplicates"] == sent[MessageKind.DUPLICATE]
    assert parts["lines"] == parts["valid"] + parts["invalid"] + parts["duplicates"]
    assert parts["balanced"] is True


def _settled(result: Any, sent: int, timeout_s: float = 180.0) -> dict[str, Any]:
    """The counters once every sent message was received and they stopped moving (the
    local runner on a busy machine takes a while)."""
    deadline = time.monotonic() + timeout_s
    previous: dict[str, Any] = {}
    while time.monotonic() < deadline:
        time.sleep(5)
        parts = collect(result).reconciliation
        if parts["received"] >= sent and parts == previous:
            return parts
        previous = parts
    return previous


def test_stream_received_reconciles(platform: PlatformConfig) -> None:
    plans, _ = plans_for(REGISTRY, VIEWS)
    settings = StreamSettings(warm_start=False, allowed_lateness_s=0.0)
    pipeline = make_pipeline([], streaming=True)
    build_stream(pipeline, platform, REGISTRY, plans, settings, online_sink(platform))
    messages = traffic(42, datetime.now(UTC) - timedelta(minutes=3), timedelta(minutes=2))
    reset_local()
    result = pipeline.run()
    try:
        time.sleep(5)  # the job subscribes
        topics = {t: platform.topic_id(t) for t in ("review-events", "user-events")}
        publish_messages(platform.project, messages, rate=400, topic_ids=topics)
        parts = _settled(result, len(messages))
    finally:
        result.cancel()
    sent = kinds(messages)
    assert parts["received"] == len(messages)
    assert parts["invalid"] == sent[MessageKind.MALFORMED]
    assert parts["duplicates"] == sent[MessageKind.DUPLICATE]
    assert parts["received"] == parts["valid"] + parts["invalid"] + parts["duplicates"]
    assert parts["balanced"] is True
    assert {"late", "rejected"} <= set(parts)  # counted apart, printed with the rest
