"""No personal field (`ip_hash`, `device_id`, `text`) reaches a log line: a small
backfill of simulated traffic (bad messages included) runs with every logger at DEBUG,
and no record mentions any of the values it carried."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feature_store.config import PlatformConfig
from feature_store.reference import REGISTRY
from jobs.backfill import run_backfill
from simulator.traffic import SimulationConfig, simulate, write_jsonl
from tests.integration.checks import VIEWS

pytestmark = pytest.mark.integration

PII_FIELDS = ("ip_hash", "device_id", "text")


def test_no_personal_value_in_any_log_line(
    platform: PlatformConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = SimulationConfig(
        seed=51,
        start=datetime.now(UTC) - timedelta(hours=6),
        duration=timedelta(hours=5),
        events=300,
        users=10,
        businesses=4,
        bad_share=0.1,
        duplicate_share=0.05,
    )
    messages = list(simulate(config))
    values: set[str] = set()
    for message in messages:
        try:
            body = json.loads(message.raw)
        except ValueError:
            continue
        if isinstance(body, dict):
            values |= {
                str(body[f])
                for f in PII_FIELDS
                if isinstance(body.get(f), str) and len(body[f]) >= 6
            }
    assert len(values) > 50
    write_jsonl(messages, tmp_path)
    with caplog.at_level(logging.DEBUG):
        run_backfill(platform, REGISTRY, [str(tmp_path)], views=VIEWS)
    lines = [record.getMessage() for record in caplog.records]
    assert lines
    leaks = [(value, line) for line in lines for value in values if value in line]
    assert leaks == []
