"""The freshness part of the online benchmark: the local runner's intake ceiling, the
streaming job's knee, and its freshness below the knee.

1. **Ceiling.** A trivial pipeline on the same local runner and the same emulator,
   reading the job's two subscriptions with the job's reader, parsing each message's
   JSON and counting it, drains a flood of simulated messages published by a process
   of its own: messages/s from a quarter of them counted to the last (all of them, or
   as many as `DRAIN_S` after the publishing allowed), on Beam's streaming DirectRunner
   as it comes and on the jobs' `LocalStreamingRunner`.
2. **Knee.** The streaming job (`jobs.stream.build_stream` + the online sink: all three
   computable views, both online stores, the raw archive, dead letters), a fresh job for
   each rate (new subscriptions, empty state, an empty archive, no warm start), fed
   `PHASE_S` of simulated traffic at a steady rate by a process of its own. Intake is
   the events the job validated (`events_valid`) a second over the last three quarters
   of the publishing. A rate holds when intake keeps within `HOLD_SHARE` of what was
   published a second, the job has validated every event `DRAIN_S` after, every probe is
   readable and the runner logged no error. The search starts at a quarter of the
   ceiling; a rate that held is followed by one half as high again, one that did not by
   90% of the intake it measured (so an overloaded first phase does not cost the search
   its phases); once one rate held and one did not, it halves the gap (below the failed
   phases' intake) until they are within 15%. The knee is the highest rate that held.
3. **Freshness** at `FRESH_SHARES` of the knee, each a fresh job: among the traffic,
   `PROBES_PER_S` probe `review_created` events of fresh users; the load's process
   polls Feast `get_online_features` every `POLL_S`, and a probe's freshness is from
   its publish call to the first read that returns its row.

The job runs in the benchmark's process; the publisher and the Feast reader run in
another (`bench.freshness_load`), so neither competes with the job for its interpreter
lock. They still share the machine's cores with it (and with whatever else runs).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import pickle
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apache_beam as beam

from bench.harness import Context, Row, load_average
from feature_store.config import PlatformConfig
from feature_store.events import attributes_for, contract_for, serialize_event, to_micros
from feature_store.reference import REGISTRY, REVIEW_EVENTS
from simulator.traffic import MessageKind, SimulatedMessage, SimulationConfig, simulate

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
VIEW = "user_review_stats"
JOIN_KEY = "user_id"
PHASE_S = (20.0, 8.0)  # publishing, full and quick
CEILING_MESSAGES = (20_000, 6000)
KNEE_STEPS = (5, 2)  # job phases of the knee search at most, full and quick
KNEE_START = 0.25  # of the ceiling: the first rate tried
KNEE_BELOW_INTAKE = 0.9  # of an overloaded phase's intake: the next rate tried
KNEE_RESOLUTION = 1.15  # the search ends when a failed rate is within this of a held one
HOLD_SHARE = 0.95
FRESH_SHARES = (0.5, 0.8)
GOAL_KNEE_SHARE = 0.5  # of the ceiling
GOAL_P99_MS = 1000.0  # up to 80% of the knee
PROBES_PER_S = 5.0
POLL_S = 0.05
SAMPLE_S = 0.1
DRAIN_S = 30.0
COUNTED = "bench_trivial_parsed"


# ----------------------------------------------------------------------------- results


@dataclass
class Ceiling:
    published: int
    counted: int  # all of them, or as many as were counted `DRAIN_S` after publishing
    seconds: float  # from a quarter of the messages counted to the last one
    rate: float
    publisher_rate: float = math.nan  # the load's own, over its last three quarters


@dataclass
class Phase:
    """One steady rate: what was published, what the job took in, how fresh the probes
    were."""

    rate: float
    purpose: str  # "knee search" or "freshness at 50% of the knee", ...
    seconds: float = math.nan  # publishing
    published: int = 0
    steady: tuple[int, float] = (0, math.nan)  # events taken in, seconds: the last 3/4
    taken_in: int = 0
    drained_s: float = math.nan  # from the start until every published event was taken in
    fresh_ms: list[float] = field(default_factory=list)
    unseen: int = 0
    job_errors: int = 0
    error: str = ""

    @property
    def offered(self) -> float:
        """Messages published a second (the publisher's achieved rate)."""
        return self.published / self.seconds if self.seconds > 0 else 0.0

    @property
    def throughput(self) -> float:
        events, seconds = self.steady
        return events / seconds if seconds > 0 else 0.0

    @property
    def p50_p99(self) -> tuple[float, float]:
        if len(self.fresh_ms) < 2:
            return math.nan, math.nan
        cuts = statistics.quantiles(self.fresh_ms, n=100, method="inclusive")
        return cuts[49], cuts[98]

    @property
    def held(self) -> bool:
        return (
            not self.error
            and self.job_errors == 0
            and self.unseen == 0
            and self.taken_in >= self.published
            and self.throughput >= HOLD_SHARE * self.offered
        )


@dataclass
class Freshness:
    ceiling: Ceiling  # on the jobs' local runner
    stock: Ceiling  # on Beam's streaming DirectRunner as it comes (10-message pulls)
    phases: list[Phase]
    load: tuple[str, str] = ("", "")  # the machine's load average before and after

    @property
    def knee(self) -> float | None:
        held = [p.rate for p in self.phases if p.purpose == "knee search" and p.held]
        return max(held) if held else None


# ----------------------------------------------------------------------------- running


def freshness(ctx: Context, platform: PlatformConfig) -> Freshness:
    quick = 1 if ctx.quick else 0
    seconds = PHASE_S[quick]
    load_before = load_average()
    stock = trivial_ceiling(ctx, platform, CEILING_MESSAGES[quick], stock=True)
    ceiling = trivial_ceiling(ctx, platform, CEILING_MESSAGES[quick])
    log.info("trivial pipeline: %.0f msg/s (Beam's runner %.0f)", ceiling.rate, stock.rate)
    phases: list[Phase] = []
    rate = round(KNEE_START * ceiling.rate)
    for _ in range(KNEE_STEPS[quick]):
        phase = job_phase(ctx, platform, rate, seconds, "knee search")
        phases.append(phase)
        following = next_knee_rate(phases)
        if following is None:
            break
        rate = following
    result = Freshness(ceiling, stock, phases)
    knee = result.knee
    if knee is not None:
        for share in FRESH_SHARES:
            purpose = f"freshness at {share:.0%} of the knee"
            phases.append(job_phase(ctx, platform, round(share * knee), seconds, purpose))
    result.load = (load_before, load_average())
    return result


def next_knee_rate(phases: Sequence[Phase]) -> int | None:
    """The next rate of the knee search, or None once it is narrow enough.

    While every rate held, the next is half as high again. Before any held, a rate that
    did not hold is followed by `KNEE_BELOW_INTAKE` of the intake it measured (what the
    job took in while overloaded bounds what it can hold). Once one rate held and one
    did not, the gap is halved, the new rate no higher than the lowest failed rate's
    intake (or `KNEE_RESOLUTION` above the highest held rate, if that is more); the
    search ends when the lowest failed rate is within `KNEE_RESOLUTION` of the highest
    held one.
    """
    held = [p.rate for p in phases if p.held]
    failed = [p for p in phases if not p.held]
    if not failed:
        return round(phases[-1].rate * 1.5)
    lowest = min(failed, key=lambda p: p.rate)
    if not held:
        return max(1, round(KNEE_BELOW_INTAKE * min(lowest.throughput, lowest.rate)))
    highest_held = max(held)
    if lowest.rate <= KNEE_RESOLUTION * highest_held:
        return None
    middle = (highest_held + lowest.rate) / 2
    return round(min(middle, max(lowest.throughput, KNEE_RESOLUTION * highest_held)))


def trivial_ceiling(
    ctx: Context, platform: PlatformConfig, messages: int, *, stock: bool = False
) -> Ceiling:
    """The local runner's intake with nothing to do: read, parse, count (`stock`: on
    Beam's streaming DirectRunner as it comes, not the jobs' `LocalStreamingRunner`)."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

    from common.metrics import reset_local
    from jobs.runner import make_pipeline
    from online.pubsub_io import ReadEvents

    fresh_subscriptions(platform)
    reset_local()
    if stock:
        options = PipelineOptions(streaming=True)
        pipeline = beam.Pipeline(runner=BundleBasedDirectRunner(), options=options)
    else:
        pipeline = make_pipeline([], streaming=True)
    topics = [s.topic for s in REGISTRY.sources]
    _ = (
        pipeline
        | "ReadEvents" >> ReadEvents(platform.project, topics, platform.topic_prefix)
        | "Parse" >> beam.Map(lambda message: json.loads(message[1]))
        | "Count" >> beam.ParDo(_Count())
    )
    result = pipeline.run()
    try:
        spec = {"platform": platform, "rate": 0, "messages": messages, "seed": ctx.seed}
        samples, load = _with_load(ctx, spec, COUNTED, lambda n: n >= messages)
    finally:
        result.cancel()
    published, counted = int(load["published"]), samples[-1][1]
    quarter = _crossed_at(samples, published / 4)
    last = _crossed_at(samples, counted)  # all of them, or as many as `DRAIN_S` allowed
    seconds = last - quarter
    rate = (counted - published / 4) / seconds if seconds > 0 else math.nan
    sent_s = float(load["ended"]) - float(load["quarter"])
    publisher = published * 3 / 4 / sent_s if sent_s > 0 else math.nan
    log.info(
        "trivial pipeline: %d published (%.0f msg/s), %d counted", published, publisher, counted
    )
    return Ceiling(published, counted, seconds, rate, publisher)


class _Count(beam.DoFn):
    def __init__(self) -> None:
        from common.metrics import JobCounter

        self.counted = JobCounter("bench", COUNTED)

    def process(self, element: Any) -> Iterator[None]:
        self.counted.inc()
        return iter(())


def job_phase(
    ctx: Context, platform: PlatformConfig, rate: float, seconds: float, purpose: str
) -> Phase:
    """A fresh streaming job in this process, fed `seconds` of traffic at `rate` by the
    load's process once one probe went through it."""
    from common.inference.settings import NO_MODELS
    from common.metrics import reset_local
    from jobs.backfill import plans_for
    from jobs.online_sink import online_sink
    from jobs.runner import make_pipeline
    from jobs.stream import StreamSettings, build_stream

    fresh_subscriptions(platform)
    fresh_archive(platform)
    plans, _ = plans_for(REGISTRY, None, NO_MODELS)
    reset_local()
    pipeline = make_pipeline([], streaming=True)
    build_stream(
        pipeline, platform, REGISTRY, plans, StreamSettings(warm_start=False), online_sink(platform)
    )
    phase = Phase(rate, purpose)
    spec = {
        "platform": platform,
        "rate": rate,
        "seconds": seconds,
        "seed": ctx.seed,
        "label": f"{rate:g}-{len(purpose)}",
        "drain_s": DRAIN_S,
    }
    result = pipeline.run()
    try:
        with ErrorCount() as errors:
            published: list[int] = []
            samples, load = _with_load(
                ctx,
                spec,
                "events_valid",
                lambda n: bool(published) and n >= published[0] + 1,
                published,
            )
        phase.job_errors = errors.count
    finally:
        result.cancel()
    if "error" in load:
        phase.error = str(load["error"])
        return phase
    _measure(phase, samples, load)
    log.info(
        "%s, %s msg/s: published %d in %.1f s, intake %.0f events/s, all taken in after "
        "%.1f s, freshness p50/p99 %s ms, %d probes unread, %s",
        purpose,
        rate,
        phase.published,
        phase.seconds,
        phase.throughput,
        phase.drained_s,
        phase.p50_p99,
        phase.unseen,
        "held" if phase.held else "did not hold",
    )
    return phase


def _measure(phase: Phase, samples: list[tuple[float, int]], load: dict[str, Any]) -> None:
    started, quarter, ended = load["started"], load["quarter"], load["ended"]
    phase.published = int(load["published"])
    phase.seconds = ended - started
    base = _count_at(samples, started)  # the ready probe
    phase.steady = (_count_at(samples, ended) - _count_at(samples, quarter), ended - quarter)
    phase.taken_in = samples[-1][1] - base
    done = _first_at(samples, base + phase.published)
    phase.drained_s = done - started if not math.isnan(done) else math.nan
    phase.fresh_ms = list(load["fresh_ms"])
    phase.unseen = int(load["unseen"])


def _with_load(
    ctx: Context,
    spec: dict[str, Any],
    counter: str,
    done: Any,
    published: list[int] | None = None,
) -> tuple[list[tuple[float, int]], dict[str, Any]]:
    """Runs the load's process on `spec`, sampling this process's `counter` every
    `SAMPLE_S` until the load has ended and `done(count)` holds (or `DRAIN_S` after its
    publishing ended)."""
    from common.metrics import local_counts

    path = ctx.workdir / f"load-{time.monotonic_ns()}.pickle"
    path.write_bytes(pickle.dumps(spec))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "bench.freshness_load", str(path)]
    samples: list[tuple[float, int]] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env) as load:
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(load.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        while load.poll() is None:
            samples.append((time.time(), local_counts().get(counter, 0)))
            time.sleep(SAMPLE_S)
        reader.join()
    if load.returncode != 0 or not out or not out[0].strip():
        msg = f"the load's process ended with status {load.returncode} and no result"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(out[0].strip().splitlines()[-1])
    if published is not None and "published" in result:
        published.append(int(result["published"]))
    deadline = float(result.get("ended", time.time())) + DRAIN_S
    while "error" not in result and time.time() < deadline:
        count = local_counts().get(counter, 0)
        samples.append((time.time(), count))
        if done(count):
            break
        time.sleep(SAMPLE_S)
    return samples, result


def fresh_subscriptions(platform: PlatformConfig) -> None:
    """The job's subscriptions made anew: nothing left over from an earlier job."""
    from google.cloud import pubsub_v1

    from feature_store.resources import stream_subscription
    from online.pubsub_admin import pubsub_changes

    subscriber = pubsub_v1.SubscriberClient()
    try:
        for topic in topic_ids(platform):
            sub = platform.topic_id(stream_subscription(topic))
            with contextlib.suppress(Exception):
                subscriber.delete_subscription(
                    subscription=subscriber.subscription_path(platform.project, sub)
                )
    finally:
        subscriber.close()
    pubsub_changes(platform.project, REGISTRY, apply=True, prefix=platform.topic_prefix)


def fresh_archive(platform: PlatformConfig) -> None:
    """The archive's tables made anew, empty, so that a phase's archive writes do not
    depend on what the phases before it wrote: the BigQuery emulator copies the whole
    table at each write (for time travel), so its `insertAll` grows dearer with the
    table it appends to (20-30 ms a call on an empty table, over 100 ms past 25k rows),
    which BigQuery's does not, and so does its memory until it drops the copies (the
    local stack keeps none past its sweep, once a minute; dropping the table drops
    them too): a phase's calls are made on a small table."""
    from common.bigquery_admin import bigquery_changes
    from common.bigquery_client import make_client
    from feature_store.schemas import all_tables

    client = make_client(platform.project, platform.bigquery_endpoint)
    client.delete_dataset(platform.archive_dataset, delete_contents=True, not_found_ok=True)
    specs = all_tables(REGISTRY, platform.features_dataset, platform.archive_dataset)
    bigquery_changes(
        client, [s for s in specs if s.dataset == platform.archive_dataset], apply=True
    )


class ErrorCount(logging.Handler):
    """Counts the error records of Beam's loggers while installed (`with`)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    def __enter__(self) -> ErrorCount:
        logging.getLogger("apache_beam").addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger("apache_beam").removeHandler(self)


def _count_at(samples: Sequence[tuple[float, int]], at: float) -> int:
    """The count last sampled at or before `at`."""
    found = 0
    for t, n in samples:
        if t > at:
            break
        found = n
    return found


def _crossed_at(samples: Sequence[tuple[float, int]], count: float) -> float:
    """When the count reached `count`, interpolated between the sample before and the
    first at or past it (NaN: never); a drain shorter than a few `SAMPLE_S` is then
    still timed, at the slope of the samples around it."""
    if samples and samples[0][1] >= count:
        return samples[0][0]
    for (t0, n0), (t1, n1) in itertools.pairwise(samples):
        if n1 >= count:
            return t0 + (t1 - t0) * (count - n0) / (n1 - n0)
    return math.nan


def _first_at(samples: Sequence[tuple[float, int]], count: float) -> float:
    """When the count first reached `count` (NaN: never)."""
    return next((t for t, n in samples if n >= count), math.nan)


# ----------------------------------------------------------------------------- load


def probe_message(user: str) -> SimulatedMessage:
    """A `review_created` event of a user never seen before, timed now."""
    now = datetime.now(UTC)
    event = contract_for(REVIEW_EVENTS).event(
        event_id=f"{user}-review",
        event_type="review_created",
        event_time=now,
        review_id=f"{user}-review",
        user_id=user,
        business_id="probe-business",
        rating=4,
        text="A probe review, to measure freshness.",
    )
    return SimulatedMessage(
        event.topic,
        serialize_event(event),
        attributes_for(event),
        MessageKind.VALID,
        to_micros(now),
    )


def traffic(
    rate: float, seconds: float, seed: int, prefix: str, *, probes: bool = True
) -> list[tuple[SimulatedMessage, str | None]]:
    """Simulated valid traffic of `rate * seconds` messages, every k-th one a probe
    (`PROBES_PER_S` a second, none without `probes`), each with its probe's user (None:
    not a probe)."""
    total = int(rate * seconds)
    every = max(1, round(rate / PROBES_PER_S)) if probes else total + 1
    config = SimulationConfig(
        seed=seed, events=total - total // every, duration=timedelta(seconds=seconds), users=10_000
    )
    background = iter(simulate(config))
    out: list[tuple[SimulatedMessage, str | None]] = []
    for n in range(total):
        user = f"{prefix}{n}" if n % every == every - 1 else None
        out.append((probe_message(user), user) if user else (next(background), None))
    return out


def topic_ids(platform: PlatformConfig) -> dict[str, str]:
    return {topic: platform.topic_id(topic) for topic in ("review-events", "user-events")}


class ProbeWatcher:
    """Polls Feast for the probes' users on a thread of its own; knows when each
    probe was published and when its row was first read back."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs
        self._lock = threading.Lock()
        self._announced: str | None = None
        self._sent: dict[str, float] = {}
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="probe-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def announce(self, user: str | None) -> None:
        """The next message to be published is the probe of `user` (None: not a probe)."""
        self._announced = user

    def published(self, _count: int) -> None:
        """`publish_messages`' progress callback: the announced message just went out."""
        if self._announced is not None:
            with self._lock:
                self._sent[self._announced] = time.perf_counter()
            self._announced = None

    def wait(self, users: Sequence[str], timeout_s: float) -> dict[str, float]:
        """Freshness in ms of each of `users` read back within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if all(user in self._seen for user in users):
                    break
            time.sleep(POLL_S)
        with self._lock:
            return {u: (self._seen[u] - self._sent[u]) * 1000 for u in users if u in self._seen}

    def _poll(self) -> None:
        feature = f"{VIEW}:review_count_1h"
        while not self._stop.wait(POLL_S):
            with self._lock:
                pending = [u for u in self._sent if u not in self._seen]
            if not pending:
                continue
            try:
                read = self._fs.get_online_features(
                    features=[feature], entity_rows=[{JOIN_KEY: u} for u in pending]
                ).to_dict()
            except Exception:
                log.warning("probe read failed; polling on", exc_info=True)
                continue
            now = time.perf_counter()
            with self._lock:
                for user, count in zip(read[JOIN_KEY], read["review_count_1h"], strict=True):
                    if count:
                        self._seen.setdefault(user, now)


# ----------------------------------------------------------------------------- report


def fresh_rows(result: Freshness) -> list[Row]:
    ceiling = result.ceiling
    rows = [
        Row(
            benchmark="online",
            group="local intake of a trivial pipeline (read, parse, count)",
            system=system,
            reference=reference,
            events=max(0, round(c.counted - c.published / 4)),
            wall_s=c.seconds,
            variant="the job's Pub/Sub reader, json.loads, count: draining a flood",
            check=f"{c.counted:,} of {c.published:,} counted",
        )
        for c, system, reference in (
            (result.stock, "Beam's streaming DirectRunner (10-message pulls)", True),
            (ceiling, "the jobs' LocalStreamingRunner", False),
        )
    ]
    for phase in result.phases:
        p50, p99 = phase.p50_p99
        state = "held" if phase.held else "DID NOT HOLD"
        if phase.error:
            state = f"FAILED: {phase.error}"
        elif phase.job_errors:
            state = f"DID NOT HOLD, the runner logged {phase.job_errors} errors"
        rows.append(
            Row(
                benchmark="online",
                group=f"stream at {phase.rate:,.0f} msg/s offered ({phase.purpose})",
                system="feature-store stream (local runner)",
                events=phase.steady[0],
                wall_s=phase.steady[1],
                variant=(
                    f"publish → readable via Feast: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms "
                    f"({len(phase.fresh_ms)} probes)"
                ),
                check=(
                    f"{state}: events validated a second over the last 3/4 of "
                    f"{phase.published:,} published in {phase.seconds:.1f} s; all taken in "
                    f"after {_drained(phase)} s, {phase.unseen} probes unread"
                ),
            )
        )
    return rows


def _fresh_phases(result: Freshness) -> list[Phase]:
    return [p for p in result.phases if p.purpose.startswith("freshness")]


def _verdicts(result: Freshness) -> tuple[bool, bool]:
    """(the knee at least `GOAL_KNEE_SHARE` of the ceiling, the p99 under `GOAL_P99_MS`
    at every freshness rate)."""
    knee, fresh = result.knee, _fresh_phases(result)
    knee_met = knee is not None and knee >= GOAL_KNEE_SHARE * result.ceiling.rate
    p99_met = bool(fresh) and all(p.p50_p99[1] < GOAL_P99_MS for p in fresh)
    return knee_met, p99_met


def fresh_goals(ctx: Context, result: Freshness) -> None:
    """The issue's two local-intake goals, judged from this run's figures."""
    ceiling, knee = result.ceiling.rate, result.knee
    fresh = _fresh_phases(result)
    knee_met, p99_met = _verdicts(result)
    ctx.goal(
        f"the streaming job's knee at least {GOAL_KNEE_SHARE:.0%} of the trivial pipeline's "
        "intake on the same runner and emulator",
        "no rate held"
        if knee is None
        else f"knee {knee:,.0f} msg/s, {knee / ceiling:.0%} of {ceiling:,.0f} msg/s",
        met=knee_met,
    )
    ctx.goal(
        f"freshness p99 under {GOAL_P99_MS:,.0f} ms up to 80% of the knee",
        ", ".join(f"{p.p50_p99[1]:,.0f} ms at {p.rate:,.0f} msg/s" for p in fresh)
        or "no rate held",
        met=p99_met,
    )


def _drained(phase: Phase) -> str:
    """Seconds from the start until every published event was in; when some were not
    in by the end of the wait (the publishing and `DRAIN_S` after it), more than that;
    a dash for a phase that failed before it published."""
    if math.isnan(phase.drained_s):
        return "—" if math.isnan(phase.seconds) else f"> {phase.seconds + DRAIN_S:.0f}"
    return f"{phase.drained_s:.1f}"


def fresh_text(result: Freshness) -> str:
    ceiling, knee = result.ceiling, result.knee
    lines = [
        "| phase | offered msg/s | published msg/s | intake events/s | all in after s "
        "| p50 ms | p99 ms | probes | unread | runner errors | held |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in result.phases:
        p50, p99 = p.p50_p99
        lines.append(
            f"| {p.purpose} | {p.rate:,.0f} | {p.offered:,.0f} | {p.throughput:,.0f} | "
            f"{_drained(p)} | {p50:,.0f} | {p99:,.0f} | {len(p.fresh_ms)} | {p.unseen} | "
            f"{p.job_errors} | {'yes' if p.held else 'no'} |"
        )
    fresh = _fresh_phases(result)
    knee_goal = GOAL_KNEE_SHARE * ceiling.rate
    if knee is None:
        verdict = "No rate held: the knee is below the lowest rate tried. The goal is not met."
    else:
        knee_met, p99_met = _verdicts(result)
        verdict = (
            f"Knee: {knee:,.0f} msg/s, {knee / ceiling.rate:.0%} of the trivial pipeline's "
            f"{ceiling.rate:,.0f} msg/s (goal ≥ {GOAL_KNEE_SHARE:.0%}, {knee_goal:,.0f} msg/s: "
            f"{'met' if knee_met else 'NOT met'}). Freshness p99 at "
            + ", ".join(f"{p.rate:,.0f} msg/s {p.p50_p99[1]:,.0f} ms" for p in fresh)
            + f" (goal < {GOAL_P99_MS:,.0f} ms up to 80% of the knee: "
            + f"{'met' if p99_met else 'NOT met'})."
        )
    return (
        f"Trivial pipeline (the job's reader, `json.loads`, a count; same emulator, same "
        f"run): {ceiling.rate:,.0f} msg/s on the jobs' local runner, the ceiling below "
        f"({result.stock.rate:,.0f} msg/s on Beam's streaming DirectRunner as it comes, "
        f"whose reader pulls 10 messages a bundle), draining {ceiling.published:,} "
        "messages a process of its own published as fast as it could "
        f"({ceiling.publisher_rate:,.0f} msg/s over its last three quarters: a ceiling "
        "close to it is bounded by the publisher, and the runner's own may be higher).\n\n"
        + "\n".join(lines)
        + f"\n\n{verdict}\n\nA rate holds when the job's intake (events validated a second "
        f"over the last three quarters of the publishing) keeps within {HOLD_SHARE:.0%} of "
        f"what was published a second, every event is validated within {DRAIN_S:.0f} s "
        "after, every probe is readable and the runner logged no error. Each phase is a "
        "fresh job (`StreamSettings(warm_start=False)`) writing an empty archive table "
        "(`fresh_archive`: the BigQuery emulator's appends grow dearer with the table), "
        f"{PHASE_S[0]:.0f} s of publishing "
        f"({PHASE_S[1]:.0f} s with `--quick`), {PROBES_PER_S:.0f} probes a second; the "
        "publisher and the Feast reader run in a process of their own "
        "(`bench/freshness_load.py`). The machine's cores are shared (with the load's "
        f"process and whatever else runs): load average {result.load[0]} before this "
        f"part, {result.load[1]} after."
    )
