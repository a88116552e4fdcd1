"""Waiting on a running pipeline without missing its death.

`PipelineResult.wait_until_finish()` is the one call every runner implements that
reports a failure (it raises, or returns a terminal state); the local DirectRunner never
updates `result.state` otherwise. So a job run for a fixed time is waited on from a
helper thread, and the caller polls that thread and the result's state: a job that dies
is reported at once, with its error, however long it was meant to run.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from apache_beam.runners.runner import PipelineState

from feature_store.errors import FeatureStoreError

log = logging.getLogger(__name__)

POLL_S = 0.5
_FAILED_STATES = frozenset({PipelineState.FAILED, PipelineState.CANCELLED})


class JobFailedError(FeatureStoreError):
    """The pipeline stopped by itself with an error (or was cancelled from outside)."""


class _Waiter(threading.Thread):
    def __init__(self, result: Any) -> None:
        super().__init__(name="pipeline-waiter", daemon=True)
        self.result = result
        self.state: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.state = self.result.wait_until_finish()
        except BaseException as err:  # reported to the caller, not lost
            self.error = err


def _state(result: Any) -> str | None:
    try:
        return str(result.state)
    except Exception:  # a runner that cannot say: the waiter tells
        return None


def wait_for(result: Any, duration_s: float, *, poll_s: float = POLL_S) -> str:
    """Wait up to `duration_s` for a running job; return the state it is in then
    (`RUNNING` when it outlived the wait). Raise `JobFailedError` naming the job's error
    as soon as it fails or is cancelled by someone else."""
    waiter = _Waiter(result)
    waiter.start()
    deadline = time.monotonic() + duration_s
    while True:
        waiter.join(timeout=max(0.0, min(poll_s, deadline - time.monotonic())))
        state = _state(result)
        if not waiter.is_alive():
            if waiter.error is not None:
                msg = f"the job failed: {type(waiter.error).__name__}: {waiter.error}"
                raise JobFailedError(msg) from waiter.error
            state = str(waiter.state) if waiter.state is not None else state
        if state in _FAILED_STATES:
            msg = f"the job stopped in state {state}"
            raise JobFailedError(msg)
        if not waiter.is_alive():
            log.info("the job finished by itself in state %s", state)
            return state or PipelineState.DONE
        if time.monotonic() >= deadline:
            return PipelineState.RUNNING
