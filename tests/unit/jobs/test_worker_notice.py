"""The local runner's worker processes each log a staging notice as they start; the
jobs' pipelines drop that one record from the relay and nothing else."""

from __future__ import annotations

import logging

import pytest

from jobs.runner import WORKER_LOG, make_pipeline

NOTICE = (
    'Worker: severity: WARN message: "No semi_persistent_directory found:  User registered '
    'objects (e.g. schema, logical type) throughregisteries may not be effective"'
)


def test_the_staging_notice_is_dropped_and_other_records_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_pipeline([])
    make_pipeline([])  # installed once
    relay = logging.getLogger(WORKER_LOG)
    assert len(relay.filters) == 1
    with caplog.at_level(logging.WARNING, logger=WORKER_LOG):
        relay.warning("%s", NOTICE)
        relay.warning('Worker: severity: WARN message: "cannot open the vector index"')
    assert [r.getMessage() for r in caplog.records] == [
        'Worker: severity: WARN message: "cannot open the vector index"'
    ]
