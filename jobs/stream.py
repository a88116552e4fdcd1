"""The streaming online job's wiring and running: the pipeline itself (Pub/Sub →
validation → raw archive, de-duplication → exact windows warm-started from the archive →
online stores) is `online.pipeline.StreamFeatures`. Runs on the DirectRunner locally and
unchanged on Dataflow."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam

from common.beam_types import Transform
from common.counting import stream_reconciliation
from common.inference.settings import BACK, SENT
from common.stages import expand_at_top_level
from common.vectors import ROWS_UNCHANGED
from feature_store.config import PlatformConfig
from feature_store.core.plan import ViewPlan
from feature_store.events import from_micros
from feature_store.registry import Registry
from jobs.backfill import plans_for
from jobs.runner import make_pipeline
from jobs.watch import wait_for
from online.from_rows import ROWS_FOLDED
from online.pipeline import StreamFeatures, StreamSettings, history_horizon_us
from online.sink import ROWS_TAKEN
from online.stateful import WATERMARK_REACHED

__all__ = [
    "StreamProgress",
    "StreamSettings",
    "StreamSummary",
    "build_stream",
    "history_horizon_us",
    "plans_for",
]

log = logging.getLogger(__name__)
US = 1_000_000
HANDED_OUT = ("change_points", "change_points_from_timers")  # the stateful step's rows
ACCOUNTED = (ROWS_UNCHANGED, ROWS_FOLDED, ROWS_TAKEN)  # where each of them ends


def rows_in_flight(counts: dict[str, int]) -> int:
    """Rows the stateful step handed out that the online writers are not done with yet
    (still in the kernel stage, or in a write that has not returned). No counter moves
    while they wait there, so quiet counters alone do not tell an idle job. (Below zero
    only for a moment, the stateful step counting its rows at the end of its bundle, or
    for good when an earlier job of the process wrote after the counts were reset.)"""
    return sum(counts.get(n, 0) for n in HANDED_OUT) - sum(counts.get(n, 0) for n in ACCOUNTED)


@dataclass
class StreamSummary:
    counters: dict[str, int] = field(default_factory=dict)
    distributions: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped_views: dict[str, str] = field(default_factory=dict)
    ran_s: float = 0.0

    @property
    def reconciliation(self) -> dict[str, Any]:
        """`received = valid + invalid + duplicates`, with late and rejected apart."""
        return stream_reconciliation(self.counters)


def build_stream(
    pipeline: beam.Pipeline,
    config: PlatformConfig,
    registry: Registry,
    plans: Sequence[ViewPlan],
    settings: StreamSettings,
    sink: Transform,
    started_us: int | None = None,
) -> None:
    """Wires the streaming job into `pipeline` (its stages keep their top-level labels)."""
    started_us = started_us or int(datetime.now(UTC).timestamp() * US)
    job = StreamFeatures(
        config=config,
        registry=registry,
        plans=plans,
        settings=settings,
        sink=sink,
        started_us=started_us,
    )
    expand_at_top_level(pipeline, job)


def run_stream(
    config: PlatformConfig,
    registry: Registry,
    settings: StreamSettings,
    *,
    duration_s: float | None = None,
    pipeline_args: Sequence[str] = (),
) -> StreamSummary:
    """Runs until cancelled (Ctrl-C) or for `duration_s`, then reports the job's metrics."""
    from common.metrics import reset_local
    from jobs.online_sink import online_sink

    plans, skipped = plans_for(registry, settings.views or None, settings.models)
    reset_local()
    pipeline = make_pipeline(pipeline_args, streaming=True)
    build_stream(pipeline, config, registry, plans, settings, online_sink(config))
    begun = time.monotonic()
    result = pipeline.run()
    try:
        with sigterm_as_interrupt():
            wait_for(result, math.inf if duration_s is None else duration_s)
    except KeyboardInterrupt:
        log.info("stopping the streaming job")
    finally:
        summary = collect(result, skipped)
        summary.ran_s = time.monotonic() - begun
        _stop(result)
    return summary


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, a service manager stopping the job) stops the stream as Ctrl-C
    does: the job is cancelled and its summary printed. Only in the main thread, where
    Python runs signal handlers; the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(result: Any) -> None:
    """Cancel a job still running; one that already ended is left as it is."""
    from apache_beam.runners.runner import PipelineState

    if not PipelineState.is_terminal(result.state):
        result.cancel()


@dataclass
class StreamProgress:
    """The local streaming job's counters and watermark, polled, to tell when it has caught
    up and up to which event time its online rows are complete.

    That time is the watermark a fired change timer proved (`WATERMARK_REACHED`) at the
    first of the quiet polls: every change point up to it was emitted then, and nothing
    was written since. It is not the wall clock: after the stream's last timer, a value
    can change (an event leaves its window) with no online row written, while the
    offline rows, computed from the events alone, have the change."""

    # Polls (2 s apart in the demo) with no counter moving. The steps add their counters
    # once per bundle, and a bundle of the model or kernel stages can take seconds, so a
    # short quiet spell is not yet an idle job.
    quiet_polls: int = 5
    polls: list[tuple[dict[str, int], int | None]] = field(default_factory=list)

    def poll(self, counts: dict[str, int], reached_us: int | None) -> None:
        self.polls.append((counts, reached_us))
        del self.polls[: -(self.quiet_polls + 1)]

    def caught_up(self) -> bool:
        """Idle for `quiet_polls` polls: nothing read, aggregated or written, no record
        left in the model stage (one waiting there holds no watermark locally: the step
        after it could prove a time past a record it has not yet seen), and every row the
        stateful step handed out written (`rows_in_flight`: a kernel stage compiling, or
        a slow write, holds rows with no counter moving)."""
        last = self.polls[-1][0] if self.polls else None
        if last is None or last.get(SENT, 0) != last.get(BACK, 0) or rows_in_flight(last) > 0:
            return False
        return len(self.polls) > self.quiet_polls and all(c == last for c, _ in self.polls)

    def complete_until(self) -> datetime | None:
        """The event time up to which the online rows are complete, once caught up."""
        if not self.caught_up():
            return None
        reached = self.polls[0][1]
        return None if reached is None else from_micros(reached)

    def poll_job(self) -> None:
        """One poll of this process's job (the local runner's in-process tally)."""
        from common.metrics import local_counts, local_event_time

        self.poll(local_counts(), local_event_time(WATERMARK_REACHED))


def collect(result: Any, skipped: dict[str, str] | None = None) -> StreamSummary:
    """The job's counters: Beam's, or the in-process tally where it is larger (the local
    runner drops most streaming metric updates, see common.metrics)."""
    from common.metrics import local_counts, local_distributions

    summary = StreamSummary(skipped_views=skipped or {})
    summary.counters.update(local_counts())
    summary.distributions.update(local_distributions())
    metrics = result.metrics().query()
    for counter in metrics["counters"]:
        name = counter.key.metric.name
        value = max(counter.committed or 0, counter.attempted or 0)
        summary.counters[name] = max(summary.counters.get(name, 0), int(value))
    for dist in metrics["distributions"]:
        value = dist.attempted if dist.attempted is not None else dist.committed
        name = dist.key.metric.name
        if value is not None and value.count and name not in summary.distributions:
            summary.distributions[name] = {
                "count": value.count,
                "mean": round(value.mean, 1),
                "min": value.min,
                "max": value.max,
            }
    return summary
