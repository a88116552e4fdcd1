"""A streaming job that dies is reported at once, with its error and a non-zero exit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.runners.runner import PipelineState
from click.testing import CliRunner

from jobs.cli import main  # first: it registers the command modules
from jobs.runner import make_pipeline
from jobs.watch import JobFailedError, wait_for

POISON = "poisoned-value-42"


def _explode(value: Any) -> Any:
    msg = f"cannot handle {POISON}"
    raise RuntimeError(msg)


def _failing(pipeline: beam.Pipeline, *_: Any, **__: Any) -> None:
    _ = pipeline | beam.Create([1, 2, 3]) | "Explode" >> beam.Map(_explode)


def _busy(value: Any) -> Any:
    time.sleep(4)  # longer than any wait below: the job is still running when it ends
    return value


def _endless(pipeline: beam.Pipeline, *_: Any, **__: Any) -> None:
    _ = pipeline | beam.Create([1]) | "Busy" >> beam.Map(_busy)


def test_a_failing_job_raises_at_once_with_its_error() -> None:
    pipeline = make_pipeline([], streaming=True)
    _failing(pipeline)
    result = pipeline.run()
    begun = time.monotonic()
    with pytest.raises(JobFailedError, match=POISON):
        wait_for(result, 60.0, poll_s=0.1)
    assert time.monotonic() - begun < 30


def test_a_live_job_is_waited_on_for_the_duration() -> None:
    pipeline = make_pipeline([], streaming=True)
    _endless(pipeline)
    result = pipeline.run()
    begun = time.monotonic()
    state = wait_for(result, 1.5, poll_s=0.1)
    waited = time.monotonic() - begun
    result.cancel()
    assert state == PipelineState.RUNNING
    assert 1.5 <= waited < 10


@pytest.fixture
def _no_stores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("PUBSUB_EMULATOR_HOST", "BIGTABLE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FEATURE_STORE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr("jobs.online_sink.online_sink", lambda config: None)
    yield


@pytest.mark.usefixtures("_no_stores")
def test_stream_command_exits_non_zero_with_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jobs.stream.build_stream", _failing)
    begun = time.monotonic()
    result = CliRunner().invoke(main, ["stream", "--duration", "60"])
    assert result.exit_code == 1, result.output
    assert POISON in result.output
    assert time.monotonic() - begun < 30


@pytest.mark.usefixtures("_no_stores")
def test_stream_command_runs_a_live_job_for_its_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jobs.stream.build_stream", _endless)
    begun = time.monotonic()
    result = CliRunner().invoke(main, ["stream", "--duration", "1.5", "--json"])
    assert result.exit_code == 0, result.output
    assert '"ran_s"' in result.output
    assert time.monotonic() - begun >= 1.5
