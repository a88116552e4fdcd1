"""How long the streaming job's warm start takes, by the archive's age.

Input: the seeded simulator's events at a steady rate over the archive's span, ending
a day before the start, imported into the local archive (`feature-store import`), for
the three reference views that need no model. For each span, on a platform of its own
on the local emulators (its own datasets, topics and Feast project):

- **no snapshot**: the stream started before any backfill: its warm start reads the
  whole archive (the fallback, `warm start reads ALL of the archive`);
- **snapshot**: after a backfill of the whole archive (which leaves the snapshot of the
  unbounded features), the stream started again: it reads the snapshot and the archive
  since `start - longest window - lateness` (30 days and 5 minutes here) in parallel
  day splits.

Wall s is from `pipeline.run()` of the streaming job (Beam's local streaming runner,
one process) to the last poll at which its counters still moved before they settled
(every archived event read, aggregated and its online rows written; counters polled
every 0.5 s, settled after 10 quiet polls). The rows read are the job's counters
`archive_rows_read` and `snapshot_rows_read`. The check compares the archived rows a start
read with the count of simulated events it must read (all of them; those after the
snapshot's cut). That the values are exact either way is what
`tests/integration/test_warm_start.py` checks against the brute force.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

from bench.bench_online import isolated_platform
from bench.harness import Context, Row
from feature_store.config import PlatformConfig
from feature_store.events import to_micros
from feature_store.reference import REGISTRY
from simulator.traffic import SimulationConfig, simulate, write_jsonl

log = logging.getLogger(__name__)

VIEWS = ("user_review_stats", "user_activity", "business_review_stats")
SPANS_DAYS = (30, 90, 180)
QUICK_SPANS_DAYS = (30, 60)
EVENTS_PER_DAY = 200
QUICK_EVENTS_PER_DAY = 50
POLL_S = 0.5
QUIET_POLLS = 10
TIMEOUT_S = 900.0
GROUP = "warm start of the streaming job, by archive age"


def _warm_start(config: PlatformConfig, started: datetime) -> tuple[float, dict[str, int]]:
    """(seconds until the warm start settled, the job's counters)."""
    from common.metrics import local_counts, reset_local
    from jobs.backfill import plans_for
    from jobs.online_sink import online_sink
    from jobs.runner import make_pipeline
    from jobs.stream import StreamProgress, StreamSettings, build_stream

    reset_local()
    plans, _ = plans_for(REGISTRY, VIEWS)
    pipeline = make_pipeline([], streaming=True)
    started_us = int(started.timestamp() * 1_000_000)
    build_stream(
        pipeline, config, REGISTRY, plans, StreamSettings(), online_sink(config), started_us
    )
    progress = StreamProgress(quiet_polls=QUIET_POLLS)
    begun = time.monotonic()
    job = pipeline.run()
    moved, last = begun, None
    try:
        while time.monotonic() - begun < TIMEOUT_S:
            time.sleep(POLL_S)
            counts = dict(local_counts())
            if counts != last:
                moved, last = time.monotonic(), counts
            progress.poll_job()
            if progress.caught_up() and counts.get("events_aggregated"):
                return moved - begun, counts
    finally:
        job.cancel()
    msg = f"the warm start did not settle in {TIMEOUT_S:g} s: {local_counts()}"
    raise RuntimeError(msg)


def _check(counts: dict[str, int], expected: int, what: str) -> str:
    """The archived rows the start read against the count of the history's events it
    must read (computed here from the simulated events)."""
    read = counts.get("archive_rows_read", 0)
    snapshot = counts.get("snapshot_rows_read", 0)
    state = "read" if read == expected else f"DIFFERENT: read {read:,}, expected"
    return f"{state} {expected:,} archived rows ({what}), {snapshot:,} snapshot rows"


def _read_after(now_us: int) -> int:
    """What a start with a snapshot must read after: the longest window and the
    lateness back, or the cut of a snapshot view when that is earlier."""
    from feature_store.core.snapshot import snapshot_cut
    from jobs.backfill import plans_for
    from jobs.stream import StreamSettings

    plans = plans_for(REGISTRY, VIEWS)[0]
    lateness = int(StreamSettings().allowed_lateness_s * 1_000_000)
    windows = now_us - max(p.longest for p in plans) - lateness
    cuts = [
        snapshot_cut(p.longest, now_us) for p in plans if any(f.window is None for f in p.features)
    ]
    return min([windows, *cuts])


def _event_us(raw: bytes) -> int:
    text = json.loads(raw)["event_time"].replace("Z", "+00:00")
    return to_micros(datetime.fromisoformat(text))


def _one_span(ctx: Context, days: int, per_day: int) -> list[Row]:
    from jobs.backfill import run_backfill
    from jobs.importer import run_import

    now = datetime.now(UTC).replace(microsecond=0)
    events = days * per_day
    history = list(
        simulate(
            SimulationConfig(
                seed=ctx.seed,
                start=now - timedelta(days=days + 1),
                duration=timedelta(days=days),
                events=events,
                users=max(events // 20, 10),
                businesses=max(events // 200, 5),
                bad_share=0.0,
                duplicate_share=0.0,
            )
        )
    )
    files = ctx.workdir / f"warm-start-{days}d"
    write_jsonl(history, files)
    with isolated_platform(ctx.workdir, f"warm-start-{days}d") as config:
        run_import(config, REGISTRY, [str(files)])
        cold_s, cold = _warm_start(config, now)
        cold_check = _check(cold, len(history), "all")
        run_backfill(config, REGISTRY, [], views=VIEWS, end=now, online=False)
        warm_s, warm = _warm_start(config, now)
        after = _read_after(to_micros(now))
        since = sum(1 for m in history if _event_us(m.raw) > after)
        warm_check = _check(warm, since, "after the windows' start and the snapshot's cut")
    label = f"{days} days archived ({len(history):,} events)"
    return [
        Row(
            benchmark="warm_start",
            group=GROUP,
            system="feature-store",
            variant=f"{label}, {what}",
            events=len(history),
            wall_s=wall_s,
            check=check,
        )
        for what, wall_s, check in (
            ("no snapshot: the whole archive", cold_s, cold_check),
            ("snapshot + the archive's last 30 days", warm_s, warm_check),
        )
    ]


def run(ctx: Context) -> list[Row]:
    spans = QUICK_SPANS_DAYS if ctx.quick else SPANS_DAYS
    per_day = QUICK_EVENTS_PER_DAY if ctx.quick else EVENTS_PER_DAY
    if ctx.events is not None:  # --events: the longest span's size
        per_day = max(ctx.events // max(spans), 1)
    rows: list[Row] = []
    for days in spans:
        rows += _one_span(ctx, days, per_day)
    return rows
