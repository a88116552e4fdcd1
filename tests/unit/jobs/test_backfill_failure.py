"""A backfill whose pipeline fails (found by `make chaos`: BigQuery stopped while the
backfill loaded a staging table, the upload session was gone when it came back) exits 1
with one line naming the error and the step, not a traceback of 175 lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from click.testing import CliRunner
from google.api_core.exceptions import NotFound

from jobs.cli import main

UPLOAD = "404 PUT http://127.0.0.1:1/upload/bigquery/v2/jobs: Upload session abc not found"


def _upload_lost(_: object) -> None:
    raise NotFound(UPLOAD)


def _failing_backfill(pipeline: beam.Pipeline, *_: Any) -> None:
    _ = pipeline | beam.Create([1]) | "WriteOffline" >> beam.Map(_upload_lost)


def test_a_failed_backfill_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("jobs.backfill.wire_backfill", _failing_backfill)
    result = CliRunner().invoke(
        main,
        ["--state-dir", str(tmp_path), "backfill", "--no-online", "--models", "none"],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: the backfill failed: NotFound: ")
    assert "Upload session abc not found" in lines[0]
    assert "WriteOffline" in lines[0]
