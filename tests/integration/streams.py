"""Waiting on a streaming job that runs in this process (Beam's local runner)."""

from __future__ import annotations

import time
from datetime import datetime

from common.metrics import local_counts
from jobs.stream import StreamProgress


def wait_settled(
    timeout_s: float = 180.0, quiet_polls: int = 5, past: datetime | None = None
) -> datetime | None:
    """Polls the job's counters once a second until they stop moving (everything read,
    aggregated and written, no record left in the model stage) with some event
    aggregated; returns the event time up to which its online rows are then complete
    (None when no change timer has fired yet). With `past`, it waits on until that time
    is itself past `past` (a pause of the job is no proof that it got there)."""
    deadline, progress = time.monotonic() + timeout_s, StreamProgress(quiet_polls=quiet_polls)
    while time.monotonic() < deadline:
        time.sleep(1)
        progress.poll_job()
        if progress.caught_up() and local_counts().get("events_aggregated"):
            complete = progress.complete_until()
            if past is None or (complete is not None and complete >= past):
                return complete
    beyond = "" if past is None else f" past {past}"
    msg = f"the stream did not settle{beyond} in {timeout_s:g} s: {local_counts()}"
    raise AssertionError(msg)
