"""Faults injected into the loop on the local emulators, and what survived them.

With the streaming job running as its own process (`feature-store stream`) and simulated
traffic published as it happens:

1. Redis, then Bigtable, stopped for 20 s and started again on the same port. The local
   emulators keep their data in memory, so a restarted store is EMPTY: recovery is the
   stream catching up plus the repair the nightly backfill makes (it writes the online
   stores); for Bigtable, `apply` recreates the tables first.
2. The stream SIGKILLed mid-traffic and started again; the messages it had pulled and
   not archived (the local runner acknowledges on pull) are named and republished.
3. Replays: the same messages published twice; the same range backfilled twice.
4. The BigQuery emulator stopped during a backfill: the backfill must fail with a clear
   line and leave the tables as they were. (This run gives the BigQuery emulator a data
   directory, so that what it held before the fault can be compared after it.)

Every recovery is judged by values computed independently: each entity's online value
equals a brute-force reading of the window definition over the messages published
(tests/integration/checks.py), and `consistency` finds 0 mismatches against a backfill
of the archive. The results go to RELIABILITY.md.
"""

from __future__ import annotations

import json
import logging
import os
import platform as host
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feature_store.config import PlatformConfig
from feature_store.events import Event, validate
from feature_store.reference import REGISTRY
from feature_store.schemas import archive_table_ids
from infra import services
from infra import stack as local_stack
from simulator.traffic import SimulatedMessage, SimulationConfig, simulate, write_jsonl
from tests.integration.checks import VIEWS, check_online
from tests.integration.history import two_days_of_history

log = logging.getLogger("chaos")
REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = 20.0
STREAM_ARGS = ("stream", "--views", ",".join(VIEWS), "--models", "none", "--json")
USERS, BUSINESSES = 40, 8


@dataclass(frozen=True, kw_only=True)
class Outcome:
    fault: str
    survived: bool
    detail: str


class Failed(AssertionError):
    """A fault that was not survived: why, in one line."""


# --- the stack ---------------------------------------------------------------------------


def _bigquery_spec(config: PlatformConfig) -> services.ServiceSpec:
    spec = next(s for s in services.service_specs(config) if s.name == "bigquery")
    data = config.state_dir.absolute() / "chaos" / "bigquery"
    return replace(spec, argv=(*spec.argv, "--data-dir", str(data)))


def _wait_healthy(spec: services.ServiceSpec, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        healthy, detail = services.check(spec)
        if healthy:
            return
        if time.monotonic() > deadline:
            msg = f"{spec.name} did not answer within {timeout_s:g}s: {detail}"
            raise Failed(msg)
        time.sleep(0.5)


def start_service(config: PlatformConfig, name: str) -> None:
    if name == "bigquery":
        spec = _bigquery_spec(config)
        Path(spec.argv[-1]).mkdir(parents=True, exist_ok=True)
        services.start(spec)
        _wait_healthy(spec)
    else:
        local_stack.up(config, timeout=120, names=[name])


def stop_service(config: PlatformConfig, name: str) -> None:
    stopped = local_stack.down(config, [name])
    if stopped != [name]:
        msg = f"{name} was not stopped (stopped: {stopped})"
        raise Failed(msg)


def start_stack(config: PlatformConfig) -> None:
    answering = [s.name for s in services.service_specs(config) if services.check(s)[0]]
    if answering:
        msg = (
            f"{', '.join(answering)} already answer on their ports; the fault run stops and "
            "restarts the emulators, so it starts its own: run `make down` first (or move "
            "the ports with FEATURE_STORE_<SERVICE>_PORT)"
        )
        raise SystemExit(msg)
    shutil.rmtree(config.state_dir / "chaos", ignore_errors=True)
    for name in ("pubsub", "bigtable", "redis", "bigquery"):
        start_service(config, name)


def apply(config: PlatformConfig) -> None:
    from jobs.provision import feast_changes, infrastructure_changes

    infrastructure_changes(config, REGISTRY, apply=True)
    feast_changes(config, REGISTRY, apply=True)


# --- traffic -----------------------------------------------------------------------------


class Traffic(threading.Thread):
    """Publishes simulated messages as their arrival time comes, until told to stop."""

    def __init__(self, config: PlatformConfig, seconds: float, rate: float, seed: int) -> None:
        super().__init__(name="traffic", daemon=True)
        now = datetime.now(UTC)
        self.config = config
        self.messages = sorted(
            simulate(
                SimulationConfig(
                    seed=seed,
                    start=now,
                    duration=timedelta(seconds=seconds),
                    events=int(seconds * rate),
                    users=USERS,
                    businesses=BUSINESSES,
                    bad_share=0.02,
                    duplicate_share=0.03,
                )
            ),
            key=lambda m: m.arrival_us,
        )
        self.sent: list[SimulatedMessage] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            pending = list(self.messages)
            while pending and not self._halt.is_set():
                now_us = int(datetime.now(UTC).timestamp() * 1e6)
                due = [m for m in pending if m.arrival_us <= now_us]
                if due:
                    publish(self.config, due)
                    self.sent += due
                    pending = pending[len(due) :]
                time.sleep(0.2)
        except BaseException as err:  # reported by the phase that waits for it
            self.error = err

    def finish(self) -> list[SimulatedMessage]:
        self.join()
        if self.error is not None:
            msg = f"publishing failed: {self.error}"
            raise Failed(msg)
        return self.sent


def publish(config: PlatformConfig, messages: Sequence[SimulatedMessage]) -> None:
    from simulator.publisher import publish_messages

    topics = {s.topic: config.topic_id(s.topic) for s in REGISTRY.sources}
    publish_messages(config.project, messages, topic_ids=topics)


# --- the stream as a process -------------------------------------------------------------


class Stream:
    def __init__(self, config: PlatformConfig, name: str) -> None:
        self.log_path = config.state_dir / "chaos" / f"{name}.log"
        self.out_path = config.state_dir / "chaos" / f"{name}.json"
        with self.log_path.open("wb") as err, self.out_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jobs", *STREAM_ARGS],
                cwd=REPO,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        log.info("stream started (pid %d)", self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def check_alive(self, when: str) -> None:
        if not self.alive():
            tail = services.log_tail(self.log_path, 3)
            msg = f"the stream exited with {self.process.returncode} {when}: {tail}"
            raise Failed(msg)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> dict[str, Any]:
        """Ctrl-C, then the job's summary (counters, reconciliation)."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.kill()
            msg = f"the stream did not stop within 90 s of Ctrl-C (log: {self.log_path})"
            raise Failed(msg) from None
        text = self.out_path.read_text()
        summary: dict[str, Any] = json.loads(text[text.index("{") :]) if "{" in text else {}
        return summary


# --- checks ------------------------------------------------------------------------------


def valid(messages: Sequence[SimulatedMessage]) -> list[SimulatedMessage]:
    return [m for m in messages if isinstance(validate(m.topic, m.raw, m.attributes), Event)]


def settle(
    config: PlatformConfig,
    messages: Sequence[SimulatedMessage],
    stores: Sequence[str],
    stream: Stream | None,
    timeout_s: float = 240.0,
) -> float:
    """Waits until every entity's online value in `stores` equals the brute-force value
    over `messages`; returns the seconds it took."""
    begun = time.monotonic()
    last = ""
    while time.monotonic() - begun < timeout_s:
        if stream is not None:
            stream.check_alive("while catching up")
        try:
            for store in stores:
                check_online(config, messages, store=store)
            return time.monotonic() - begun
        except AssertionError as err:
            last = str(err)[:300]
        time.sleep(3)
    msg = f"online values in {', '.join(stores)} not exact after {timeout_s:g} s: {last}"
    raise Failed(msg)


def backfill(config: PlatformConfig, *, online: bool, end: datetime) -> None:
    from jobs.backfill import run_backfill

    run_backfill(config, REGISTRY, [], views=VIEWS, online=online, end=end)


def consistent(config: PlatformConfig, at: datetime) -> str:
    """0 mismatches in every store against the offline values at `at`."""
    from jobs.consistency import check_consistency

    parts = []
    for store in config.online_stores:
        report = check_consistency(config, REGISTRY, VIEWS, at, store=store)
        if report.mismatches or not report.entities:
            msg = f"consistency in {store}: {json.dumps(report.as_dict(examples=3))[:400]}"
            raise Failed(msg)
        parts.append(f"{store} {report.values} values of {report.entities} entities")
    return "consistency 0 mismatches (" + "; ".join(parts) + ")"


def archived_ids(config: PlatformConfig) -> set[str]:
    from common.bigquery_client import make_client

    client = make_client(config.project, config.endpoints.bigquery)
    ids: set[str] = set()
    for table in archive_table_ids(config, REGISTRY).values():
        ids |= {r["event_id"] for r in client.query(f"SELECT event_id FROM `{table}`").result()}
    return ids


def event_id(message: SimulatedMessage) -> str:
    return str(json.loads(message.raw)["event_id"])


def feature_tables(config: PlatformConfig) -> dict[str, list[tuple[Any, ...]]]:
    """Every view's change-point rows, all columns but `computed_at` (when the run was)."""
    from common.bigquery_client import make_client

    client = make_client(config.project, config.endpoints.bigquery)
    out = {}
    for view in VIEWS:
        table = f"{config.project}.{config.features_dataset}.{view}"
        rows = client.query(f"SELECT * EXCEPT (computed_at) FROM `{table}`").result()
        out[view] = sorted((tuple(map(repr, r.values())) for r in rows), key=str)
    return out


def online_contents(
    config: PlatformConfig, messages: Sequence[SimulatedMessage]
) -> dict[str, list[Any]]:
    """Every entity's online row of every view, in each store, read through Feast."""
    from feature_store.core.plan import ViewPlan
    from jobs.retrieval import get_online
    from tests.integration.checks import records

    keys = records(messages)
    out = {}
    for store in config.online_stores:
        for view in VIEWS:
            plan = ViewPlan.build(REGISTRY, view)
            entities = sorted(k for v, k in keys if v == view)
            out[f"{store}/{view}"] = get_online(
                config,
                [f"{view}:{f.name}" for f in plan.features],
                [{plan.join_key: k} for k in entities],
                store,
            )
    return out


def cli(args: Sequence[str], timeout_s: float) -> tuple[int, str, float]:
    """Runs `feature-store ARGS`; (exit code, stderr, seconds)."""
    begun = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "jobs", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return done.returncode, done.stderr, time.monotonic() - begun


# --- the run -----------------------------------------------------------------------------


@dataclass
class Run:
    config: PlatformConfig
    published: list[SimulatedMessage]
    outcomes: list[Outcome]
    replays: list[Outcome]
    notes: list[str]
    burst: list[tuple[str, int, int]] = field(default_factory=list)  # kind, sent, lost

    def record(self, fault: str, body: Callable[[], str], *, replay: bool = False) -> None:
        log.info("--- %s", fault)
        begun = time.monotonic()
        try:
            detail, survived = body(), True
        except Failed as err:
            detail, survived = str(err), False
        took = f" [{time.monotonic() - begun:.0f} s]"
        (self.replays if replay else self.outcomes).append(
            Outcome(fault=fault, survived=survived, detail=detail + took)
        )
        log.info("%s: %s: %s", fault, "survived" if survived else "NOT SURVIVED", detail)


def _outage(run: Run, stream: Stream, name: str, seed: int) -> str:
    """Traffic flows; `name` is stopped for OUTAGE_S and started again (empty); the
    stream must live through it; then the repair backfill and the checks."""
    config = run.config
    traffic = Traffic(config, seconds=OUTAGE_S + 25, rate=8, seed=seed)
    traffic.start()
    time.sleep(5)
    stop_service(config, name)
    time.sleep(OUTAGE_S)
    stream.check_alive(f"during the {name} outage")
    start_service(config, name)
    if name == "bigtable":
        apply(config)  # the restarted emulator has no tables
    run.published += traffic.finish()
    other = [s for s in config.online_stores if s != name]
    caught_up = settle(config, valid(run.published), other, stream)
    stream.check_alive(f"after the {name} outage")
    at = datetime.now(UTC)
    backfill(config, online=True, end=at)  # the repair: writes the emptied store again
    settle(config, valid(run.published), config.online_stores, stream)
    return (
        f"stream alive through a {OUTAGE_S:g} s outage; caught up {caught_up:.0f} s after "
        f"the traffic ended; {name} restarted empty, repaired by the backfill; every "
        f"online value exact in both stores; " + consistent(config, at)
    )


def _kill(run: Run, holder: list[Stream]) -> str:
    config = run.config
    traffic = Traffic(config, seconds=40, rate=10, seed=7003)
    traffic.start()
    time.sleep(15)
    holder[0].kill()
    killed_at = len(traffic.sent)
    time.sleep(2)
    holder[0] = Stream(config, "stream-2")
    run.published += traffic.finish()
    good = valid(run.published)
    wanted = {event_id(m) for m in good}
    last: set[str] = set()
    for _ in range(60):  # until the archive stops growing: everything pulled is in it
        time.sleep(5)
        holder[0].check_alive("after the warm start")
        ids = archived_ids(config) & wanted
        if ids == last and ids:
            break
        last = ids
    lost = sorted(wanted - last)
    lost_path = config.state_dir / "chaos" / "lost-on-kill.txt"
    lost_path.write_text("".join(f"{i}\n" for i in lost))
    log.info("lost on SIGKILL (pulled, not archived): %d: %s", len(lost), lost[:20])
    republish = [m for m in good if event_id(m) in set(lost)]
    if republish:
        publish(config, republish)
    settle(config, good, config.online_stores, holder[0])
    at = datetime.now(UTC)
    backfill(config, online=False, end=at)
    run.notes.append(
        f"SIGKILL after {killed_at} messages of this phase: {len(lost)} valid messages "
        f"pulled but not archived (named: {', '.join(lost[:10]) or 'none'}"
        f"{' ...' if len(lost) > 10 else ''}), republished and then exact."
    )
    return (
        f"killed mid-traffic, warm-started; {len(lost)} messages lost locally, named and "
        f"republished; every online value exact in both stores; " + consistent(config, at)
    )


def _published_twice(run: Run, stream: Stream) -> str:
    config = run.config
    again = run.published[-300:]
    publish(config, again)
    time.sleep(10)
    settle(config, valid(run.published), config.online_stores, stream)
    return (
        f"{len(again)} messages published again: every online value still equals the "
        "brute-force value counting each event once"
    )


def _backfilled_twice(run: Run, end: datetime) -> str:
    config = run.config
    args = ["backfill", "--views", ",".join(VIEWS), "--models", "none", "--end", end.isoformat()]
    snaps = []
    for _ in range(2):
        code, err, took = cli(args, timeout_s=600)
        if code:
            msg = f"backfill exited {code}: {err.strip().splitlines()[-1:]}"
            raise Failed(msg)
        snaps.append((feature_tables(config), online_contents(config, run.published), took))
    (bq1, on1, t1), (bq2, on2, _) = snaps
    if bq1 != bq2:
        msg = "the BigQuery change-point tables differ between the two backfills"
        raise Failed(msg)
    if on1 != on2:
        msg = "the online stores differ between the two backfills"
        raise Failed(msg)
    rows = sum(len(v) for v in bq1.values())
    entities = sum(len(v) for v in on1.values())
    run.notes.append(f"one backfill of the range took {t1:.0f} s")
    return (
        f"BigQuery tables identical ({rows} change-point rows, every column but "
        f"computed_at); online rows identical ({entities} entity rows over both stores)"
    )


def staging_tables(config: PlatformConfig) -> list[str]:
    """The backfill's staging tables in the features dataset: they exist from its first
    write to BigQuery until its commit."""
    from common.bigquery_client import make_client

    client = make_client(config.project, config.endpoints.bigquery)
    dataset = f"{config.project}.{config.features_dataset}"
    return [t.table_id for t in client.list_tables(dataset) if "__staging_" in t.table_id]


def _backfill_through_outage(
    config: PlatformConfig, args: Sequence[str]
) -> tuple[int, str, float, str]:
    """Runs `feature-store ARGS`, stops BigQuery for 10 s once it wrote its first staging
    table; (exit code, stderr, seconds, that staging table)."""
    begun = time.monotonic()
    backfill_process = subprocess.Popen(
        [sys.executable, "-m", "jobs", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stderr = backfill_process.stderr
    assert stderr is not None
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(stderr.read()))
    reader.start()
    seen: list[str] = []
    while not seen and backfill_process.poll() is None and time.monotonic() - begun < 300:
        seen = staging_tables(config)
        time.sleep(0.05)
    if not seen:
        backfill_process.kill()
        msg = "the backfill never wrote a staging table: the fault found no write to land in"
        raise Failed(msg)
    os.killpg(backfill_process.pid, signal.SIGSTOP)
    stop_service(config, "bigquery")
    os.killpg(backfill_process.pid, signal.SIGCONT)
    log.info("BigQuery stopped while the backfill wrote %s", seen[0])
    time.sleep(10)
    start_service(config, "bigquery")
    try:
        code = backfill_process.wait(timeout=600)
    except subprocess.TimeoutExpired:
        backfill_process.kill()
        msg = "the backfill did not end within 600 s of BigQuery's restart"
        raise Failed(msg) from None
    reader.join()
    return code, errors[0] if errors else "", time.monotonic() - begun, seen[0]


def _bigquery_down(run: Run) -> str:
    """BigQuery stopped while the backfill writes: after its first staging table, before
    its commit. The backfill is paused (SIGSTOP) for the moment the emulator is stopped,
    so that the fault lands there and not after the commit, then goes on with BigQuery
    down for 10 s. It may fail (one clear line, every table as before) or ride the outage
    out on its client's retries (then its tables must equal a clean rerun's): either way,
    no half-written range."""
    config = run.config
    before = feature_tables(config)
    # A later end than before, so that a finished run changes the tables; fixed, so that
    # a rerun computes the same range.
    end = datetime.now(UTC).isoformat()
    args = ["backfill", "--views", ",".join(VIEWS), "--models", "none", "--end", end]
    code, err, took, staging = _backfill_through_outage(config, args)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    after = feature_tables(config)
    if code == 0:
        rerun_code, rerun_err, _ = cli(args, timeout_s=600)
        if rerun_code:
            msg = f"the backfill after BigQuery came back exited {rerun_code}: {rerun_err[-300:]}"
            raise Failed(msg)
        if after != feature_tables(config):
            msg = "the backfill that rode the outage out wrote other tables than a clean rerun"
            raise Failed(msg)
        if staging_tables(config):
            msg = f"staging tables left behind: {staging_tables(config)}"
            raise Failed(msg)
        return (
            f"stopped after the backfill's first staging table ({staging}), before its "
            f"commit; the backfill rode the outage out on its client's retries (exit 0 after "
            f"{took:.0f} s); its tables equal a clean rerun's (contents compared), no staging "
            "table left"
        )
    if after != before:
        msg = "the change-point tables changed: a half-written range"
        raise Failed(msg)
    clean = len(lines) == 1 and "Traceback" not in err
    if not clean:
        msg = f"the backfill failed with {len(lines)} lines of error output: {lines[-1:]}"
        raise Failed(msg)
    rerun_code, rerun_err, _ = cli(args, timeout_s=600)
    if rerun_code:
        msg = f"the backfill after BigQuery came back exited {rerun_code}: {rerun_err[-300:]}"
        raise Failed(msg)
    changed = feature_tables(config) != before
    return (
        f"stopped after the backfill's first staging table ({staging}), before its commit; "
        f"backfill exited {code} after {took:.0f} s with one line: {lines[-1][:160]!r}; "
        "every table as before (contents compared); rerun after the restart succeeded"
        f"{' and changed the tables' if changed else ''}"
    )


def _no_defaults(body: Callable[..., None]) -> Callable[[str, bytes], None]:
    """`body` (which binds its tally as a default) as the two-argument function
    Hypothesis' @given accepts (it refuses one with defaults)."""

    def test(topic: str, raw: bytes) -> None:
        body(topic, raw)

    return test


FUZZ_PER_KIND = 40
"""The burst's bound: at most this many invalid messages of each kind (Hypothesis stops
earlier for a kind with fewer distinct values)."""


def fuzz_messages() -> list[tuple[str, str, bytes, str]]:
    """(kind, topic, raw, reason): invalid messages drawn, reproducibly, from the kinds
    tests/unit/common/test_validate_fuzz.py fuzzes `ValidateEvents` with (the valid kind
    and drawn messages that happen to be valid left out: they would change features),
    each with the reason the job's validation gives it. An empty message is left out too:
    Pub/Sub refuses a message with neither data nor attributes."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from common.transforms import DEAD_LETTER
    from tests.unit.common import test_validate_fuzz as fuzz

    out: list[tuple[str, str, bytes, str]] = []
    for kind, strategy in fuzz.KINDS.items():
        if kind == "valid event":
            continue
        drawn: dict[tuple[str, bytes], str] = {}

        def keep(topic: str, raw: bytes, drawn: dict[tuple[str, bytes], str] = drawn) -> None:
            (result,) = fuzz._outputs(topic, raw)
            if raw and getattr(result, "tag", None) == DEAD_LETTER:
                drawn[(topic, raw)] = str(result.value.reason)

        settings(
            max_examples=FUZZ_PER_KIND,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )(given(topic=st.sampled_from(fuzz.TOPICS), raw=strategy)(_no_defaults(keep)))()
        out += [(kind, topic, raw, reason) for (topic, raw), reason in drawn.items()]
    return out


def pull_dead_letters(
    config: PlatformConfig, wanted: Sequence[tuple[str, bytes]], timeout_s: float
) -> list[tuple[str, bytes, dict[str, str]]]:
    """(topic, raw, attributes) of the dead letters on every `<topic>-dlq`, pulled (and
    acknowledged) through its inspection subscription until each (topic, raw) in `wanted`
    came or `timeout_s` passed."""
    from google.cloud import pubsub_v1

    from feature_store.resources import dlq_topic, inspect_subscription

    subscriber = pubsub_v1.SubscriberClient()
    paths = {
        s.topic: subscriber.subscription_path(
            config.project, config.topic_id(inspect_subscription(dlq_topic(s.topic)))
        )
        for s in REGISTRY.sources
    }
    got: list[tuple[str, bytes, dict[str, str]]] = []
    missing = set(wanted)
    deadline = time.monotonic() + timeout_s
    try:
        while missing and time.monotonic() < deadline:
            for topic, path in paths.items():
                response = subscriber.pull(subscription=path, max_messages=500, timeout=5)
                received = response.received_messages
                if not received:
                    continue
                subscriber.acknowledge(subscription=path, ack_ids=[r.ack_id for r in received])
                for r in received:
                    got.append((topic, r.message.data, dict(r.message.attributes)))
                    missing.discard((topic, r.message.data))
    finally:
        subscriber.close()
    return got


def _fuzz_burst(run: Run, stream: Stream) -> str:
    """Invalid messages of every fuzzed kind published at once into the running stream:
    it must live, send each to its topic's dlq with the raw bytes and the reason, archive
    none of them and change no feature value."""
    from collections import Counter

    from google.cloud import pubsub_v1

    config = run.config
    burst = fuzz_messages()
    archived_before = archived_ids(config)
    publisher = pubsub_v1.PublisherClient()
    futures = [
        publisher.publish(publisher.topic_path(config.project, config.topic_id(topic)), raw)
        for _, topic, raw, _ in burst
    ]
    for future in futures:
        future.result(timeout=60)
    log.info("fuzz burst: %d invalid messages published", len(burst))
    letters = pull_dead_letters(config, [(t, r) for _, t, r, _ in burst], timeout_s=180)
    stream.check_alive("after the fuzz burst")
    arrived = Counter(
        (topic, raw, attrs.get("dlq_reason", ""), attrs.get("source_topic", ""))
        for topic, raw, attrs in letters
        if attrs.get("dlq_detail")
    )
    sent: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    for kind, topic, raw, reason in burst:
        sent[kind] += 1
        key = (topic, raw, reason, topic)
        if arrived[key]:
            arrived[key] -= 1
        else:
            lost[kind] += 1
    run.burst[:] = [(kind, sent[kind], lost[kind]) for kind in sent]
    if sum(lost.values()):
        msg = (
            f"{sum(lost.values())} of {len(burst)} invalid messages did not reach the dlq "
            f"with their raw bytes and reason: {dict(lost)}"
        )
        raise Failed(msg)
    new_ids = archived_ids(config) - archived_before
    if new_ids:
        msg = f"the burst archived events: {sorted(new_ids)[:5]}"
        raise Failed(msg)
    settle(config, valid(run.published), config.online_stores, stream)
    return (
        f"{len(burst)} invalid messages of {len(sent)} kinds published at once: stream alive; "
        "each one on its topic's dlq with its raw bytes, the reason validation gives it and "
        "a detail; no event archived; every online value still exact in both stores"
    )


def bad_input() -> list[tuple[str, int, int]]:
    """(kind, tried, lost) per kind of input the fuzz test draws, through `ValidateEvents`
    (tests/unit/common/test_validate_fuzz.py): lost = a message that did not leave
    exactly once, or an invalid one without its raw bytes and a reason."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.unit.common import test_validate_fuzz as fuzz

    check = fuzz.test_every_message_leaves_once_and_invalid_ones_with_raw_bytes_and_reason
    out = []
    for kind, strategy in fuzz.KINDS.items():
        tally = {"tried": 0, "lost": 0}

        def count(topic: str, raw: bytes, tally: dict[str, int] = tally) -> None:
            tally["tried"] += 1
            try:
                check.hypothesis.inner_test(topic=topic, raw=raw)  # type: ignore[attr-defined]
            except AssertionError:
                tally["lost"] += 1

        settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))(
            given(topic=st.sampled_from(fuzz.TOPICS), raw=strategy)(_no_defaults(count))
        )()
        out.append((kind, tally["tried"], tally["lost"]))
    return out


def interruptible_children() -> None:
    """Let the stream processes this run starts be stopped with Ctrl-C (SIGINT).

    A shell without job control starts a background command (`make chaos &`, nohup, CI
    steps) with SIGINT ignored, and an ignored signal stays ignored in every process it
    starts: the stream would then never see the Ctrl-C `Stream.stop` sends. A handler
    (unlike SIG_IGN) is reset to the default at exec, so each child gets Python's own
    KeyboardInterrupt again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    interruptible_children()
    for noisy in ("apache_beam", "feast", "google", "urllib3", "infra", "simulator"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    state = Path(os.environ.get("FEATURE_STORE_HOME", str(REPO / ".local")))
    config = PlatformConfig.local_default(state)
    config.apply_env()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    begun = time.monotonic()
    start_stack(config)
    run = Run(config=config, published=[], outcomes=[], replays=[], notes=[])
    try:
        _scenario(run)
        run.notes.append(f"bad input: {bad_input_rows(run)}")
    finally:
        local_stack.down(config)
    elapsed = time.monotonic() - begun
    write_report(run, elapsed)
    failed = [o for o in run.outcomes + run.replays if not o.survived]
    return 1 if failed else 0


_BAD: list[tuple[str, int, int]] = []


def bad_input_rows(run: Run) -> str:
    _BAD[:] = bad_input()
    return f"{sum(t for _, t, _ in _BAD)} tried, {sum(lost for _, _, lost in _BAD)} lost"


def _scenario(run: Run) -> None:
    config = run.config
    apply(config)
    now = datetime.now(UTC)
    history = two_days_of_history(
        now, seed=7000, users=USERS, businesses=BUSINESSES, bad_share=0.01
    )
    folder = config.state_dir / "chaos" / "history"
    write_jsonl(history, folder)
    from jobs.importer import run_import

    run_import(config, REGISTRY, [str(folder)])
    backfill(config, online=True, end=datetime.now(UTC))
    run.published += history
    holder = [Stream(config, "stream-1")]
    try:
        run.record("Redis stopped 20 s, restarted", lambda: _outage(run, holder[0], "redis", 7001))
        run.record(
            "Bigtable stopped 20 s, restarted", lambda: _outage(run, holder[0], "bigtable", 7002)
        )
        run.record("stream SIGKILLed mid-traffic, restarted", lambda: _kill(run, holder))
        run.record(
            "same messages published twice",
            lambda: _published_twice(run, holder[0]),
            replay=True,
        )
        run.record(
            "bounded fuzz burst through the running stream",
            lambda: _fuzz_burst(run, holder[0]),
        )
        try:
            summary = holder[0].stop()
        except Failed as err:  # a finding, reported; the run goes on with the batch faults
            run.notes.append(f"stopping the stream: {err}")
            summary = {}
        recon = summary.get("reconciliation")
        if recon:
            run.notes.append(f"restarted stream's counters at the end: {json.dumps(recon)}")
    finally:
        if holder[0].alive():
            holder[0].kill()
    end = datetime.now(UTC)
    run.record("same range backfilled twice", lambda: _backfilled_twice(run, end), replay=True)
    run.record("BigQuery stopped during a backfill", lambda: _bigquery_down(run))


def write_report(run: Run, elapsed_s: float) -> None:
    cpu = os.cpu_count()
    machine = f"{host.system()} {host.machine()}, {cpu} CPU cores, Python {host.python_version()}"
    lines = [
        "# Reliability",
        "",
        f"Written by `make chaos` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine}); "
        f"the run took {elapsed_s / 60:.1f} minutes. See README, section Reliability.",
        "",
        "## Faults injected / survived",
        "",
        f"{sum(o.survived for o in run.outcomes)} of {len(run.outcomes)} survived.",
        "",
        "| fault | survived | how it was checked |",
        "|---|---|---|",
    ]
    lines += [f"| {o.fault} | {'yes' if o.survived else 'NO'} | {o.detail} |" for o in run.outcomes]
    lines += ["", "## Replays", "", "| replay | identical | how it was checked |", "|---|---|---|"]
    lines += [f"| {o.fault} | {'yes' if o.survived else 'NO'} | {o.detail} |" for o in run.replays]
    lines += [
        "",
        "## Bad input: kinds tried / lost",
        "",
        "Drawn by Hypothesis from the strategies of tests/unit/common/test_validate_fuzz.py "
        "(the kinds `make test` fuzzes), each message through `ValidateEvents`' validation; "
        "lost = a message that did not leave exactly once, or a dead letter without its raw "
        "bytes and a reason.",
        "",
        "| kind | tried | lost |",
        "|---|---|---|",
    ]
    lines += [f"| {kind} | {tried} | {lost} |" for kind, tried, lost in _BAD]
    lines += [
        "",
        "## Bad input through the running stream: kinds sent / lost",
        "",
        "One bounded burst (row `bounded fuzz burst` above): invalid messages drawn "
        f"reproducibly from the same strategies (at most {FUZZ_PER_KIND} a kind), published "
        "at once to the running `feature-store stream` on the emulators; lost = a message "
        "not found on its topic's `-dlq` with its raw bytes, the reason validation gives "
        "it and a detail (pulled through the `-dlq-inspect` subscriptions).",
        "",
        "| kind | sent | lost |",
        "|---|---|---|",
    ]
    lines += [f"| {kind} | {sent} | {lost} |" for kind, sent, lost in run.burst]
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in run.notes]
    (REPO / "RELIABILITY.md").write_text("\n".join(lines) + "\n")
