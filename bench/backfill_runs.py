"""The project's backfill, run three ways on the same event files for the benchmark.

- `in_process`: the feature stage without Beam, each step timed: contract validation
  (`feature_store.events.validate`), de-duplication by (topic, event_id) with the job's
  rule (`copy_order`), keying (`KeyByViewEntity`) into `KeyedEvents`, and the core
  (`compute_rows_many`, what the job's ChangePoints step runs per shard).
- `beam_without_write`: the job's transforms wired as `jobs.backfill` wires them, up to
  the rows (the same Reshuffles), counted instead of written.
- `beam_backfill`: `jobs.backfill.run_backfill(..., online=False)` itself, writing into
  the local BigQuery emulator; its load jobs and the commit transaction are timed on the
  side, since they are the emulator's cost and not production's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import cpu_timed, timed, wait_for_children
from common.transforms import KeyByViewEntity
from feature_store.config import PlatformConfig
from feature_store.core.change_rows import KeyedEvents, compute_rows_many
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch
from feature_store.events import TOPICS, DeadLetter, validate
from feature_store.registry import Registry
from simulator.traffic import event_file

log = logging.getLogger(__name__)

BENCH_DATASET = "bench_features"
Record = dict[str, Any]


def raw_lines(data: Path, topic: str) -> Iterator[bytes]:
    """Each line's bytes without its newline, as the job's file reader gives them."""
    with event_file(data, topic).open("rb") as file:
        for line in file:
            yield line[:-1] if line.endswith(b"\n") else line


@dataclass
class InProcess:
    """The in-process run: seconds per step, what came out."""

    stages: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0
    invalid: int = 0
    duplicates: int = 0
    rows: dict[str, list[RowBatch]] = field(default_factory=dict)

    @property
    def change_points(self) -> int:
        return sum(len(b) for batches in self.rows.values() for b in batches)


def _validated(data: Path, run: InProcess) -> list[Record]:
    records: list[Record] = []
    for topic in TOPICS:
        for raw in raw_lines(data, topic):
            result = validate(topic, raw)
            if isinstance(result, DeadLetter):
                run.invalid += 1
                continue
            record = result.record()
            record["topic"] = topic
            records.append(record)
    return records


def _deduplicated(records: list[Record], run: InProcess) -> list[Record]:
    from offline.features import copy_order

    first: dict[tuple[str, str], Record] = {}
    for record in records:
        key = (record["topic"], record["event_id"])
        held = first.setdefault(key, record)
        if held is not record:
            run.duplicates += 1
            if copy_order(record) < copy_order(held):
                first[key] = record
    return list(first.values())


def _keyed(
    registry: Registry, plans: list[ViewPlan], records: list[Record]
) -> dict[str, KeyedEvents]:
    keyer = KeyByViewEntity(registry, plans)
    pairs: dict[str, list[tuple[str, Record]]] = defaultdict(list)
    for record in records:
        for (view, key), slim in keyer.process(record):
            pairs[view].append((key, slim))
    fields = {p.view: p.fields for p in plans}
    return {view: KeyedEvents.from_records(found, fields[view]) for view, found in pairs.items()}


def in_process(registry: Registry, plans: list[ViewPlan], data: Path) -> InProcess:
    run = InProcess()
    with cpu_timed() as used:
        _steps(registry, plans, data, run)
    run.cpu_s = used()
    return run


def _steps(registry: Registry, plans: list[ViewPlan], data: Path, run: InProcess) -> None:
    with timed() as took:
        records = _validated(data, run)
    run.stages["validate"] = took()
    with timed() as took:
        unique = _deduplicated(records, run)
        del records
        keyed = _keyed(registry, plans, unique)
        del unique
    run.stages["deduplicate + group"] = took()
    with timed() as took:
        run.rows = {p.view: compute_rows_many(p, keyed[p.view]) for p in plans if p.view in keyed}
    run.stages["core"] = took()


def _committed(result: Any, name: str) -> int:
    counters = result.metrics().query()["counters"]
    return int(sum(c.committed for c in counters if c.key.metric.name == name))


def beam_without_write(
    registry: Registry,
    plans: list[ViewPlan],
    data: Path,
    scratch: Path,
    pipeline_args: Sequence[str] = (),
) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, change points, the job's `change_points` counter) of
    the job's transforms without the BigQuery write, on the local runner with
    `pipeline_args`. The change points are the rows that came out, summed by the job
    itself; the counter is what its metrics reported."""
    import apache_beam as beam

    from common.archive_read import ReadEventFiles, discover
    from common.transforms import DEAD_LETTER, ValidateEvents
    from jobs.backfill import MESSAGE_BLOCK
    from jobs.runner import make_pipeline
    from offline.features import DeduplicateEvents, KeyForFeatures, ShardChangePoints

    files = discover([str(data)], [s.topic for s in registry.sources])
    total = scratch / f"rows-{len(pipeline_args)}-{time.monotonic_ns()}.txt"
    with timed() as took, cpu_timed() as used:
        pipeline = make_pipeline(pipeline_args)
        checked = (
            pipeline
            | "ReadArchive" >> ReadEventFiles(files, block_lines=MESSAGE_BLOCK)
            | "ValidateEvents" >> ValidateEvents("bench", batched=True)
        )
        _ = (
            checked[DEAD_LETTER]
            | "DeadLetterJson" >> beam.Map(lambda d: str(d.to_json()))
            | "WriteDeadLetters" >> beam.io.WriteToText(str(scratch / "dead_letters"))
        )
        _ = (
            checked.valid
            | "Deduplicate" >> DeduplicateEvents(batched=True)
            | "KeyForFeatures" >> KeyForFeatures(registry, plans)
            | "EngineerFeatures" >> ShardChangePoints(plans, per_shard=True)
            | "ToOutputStage" >> beam.Reshuffle()
            | "Rows" >> beam.Map(lambda shard: sum(len(batch) for batch in shard))
            | "Total" >> beam.CombineGlobally(sum)
            | "WriteTotal" >> beam.io.WriteToText(str(total), shard_name_template="")
        )
        result = pipeline.run()
        result.wait_until_finish()
        wall_s = took()
        wait_for_children()  # worker processes: their CPU time counts once reaped
    counted = _committed(result, "change_points")
    return wall_s, used(), int(total.read_text(encoding="utf-8")), counted


@contextmanager
def _timing(module: Any, names: tuple[str, ...], spent: dict[str, float]) -> Iterator[None]:
    """Wraps `module.<name>` functions to add up their wall time into `spent`."""
    originals = {name: getattr(module, name) for name in names}

    def wrapper(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            with timed() as took:
                try:
                    return function(*args, **kwargs)
                finally:
                    spent[name] = spent.get(name, 0.0) + took()

        return timed_call

    for name, function in originals.items():
        setattr(module, name, wrapper(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(module, name, function)


@dataclass
class BeamBackfill:
    wall_s: float | None
    summary: dict[str, Any]
    emulator_s: dict[str, float]
    skipped: str = ""
    cpu_s: float | None = None  # the job's process (the emulator's own process is not in)


def beam_backfill(
    registry: Registry,
    plans: list[ViewPlan],
    data: Path,
    scratch: Path,
    pipeline_args: Sequence[str] = (),
) -> BeamBackfill:
    """`run_backfill` into its own dataset of the BigQuery emulator (created here), on
    the local runner with `pipeline_args` (default: the job's own). The emulator's
    seconds are timed in this process only: on worker processes they stay empty."""
    import offline.bigquery_sink as sink
    from common.bigquery_admin import bigquery_changes
    from common.bigquery_client import make_client
    from common.inference.settings import NO_MODELS
    from feature_store.schemas import change_point_table
    from jobs.backfill import run_backfill

    config = dataclasses.replace(
        PlatformConfig.local_default(scratch / "state"), features_dataset=BENCH_DATASET
    )
    config.apply_env()
    endpoint = config.endpoints.bigquery
    try:
        client = make_client(config.project, endpoint)
        specs = [change_point_table(registry, p.view, BENCH_DATASET) for p in plans]
        bigquery_changes(client, specs, apply=True)
    except Exception as exc:  # any failure to reach it means: not run
        reason = f"skipped: BigQuery emulator at {endpoint} not usable ({type(exc).__name__})"
        log.warning("%s: %s", reason, exc)
        return BeamBackfill(None, {}, {}, reason)
    spent: dict[str, float] = {}
    gc.collect()
    try:
        with (
            _timing(sink, ("stage_rows", "commit_staged"), spent),
            timed() as took,
            cpu_timed() as used,
        ):
            summary = run_backfill(
                config,
                registry,
                [str(data)],
                views=[p.view for p in plans],  # the same work as the other rows
                online=False,
                models=NO_MODELS,
                pipeline_args=pipeline_args,
            )
            wall_s = took()
            wait_for_children()  # worker processes: their CPU time counts once reaped
    except Exception as exc:  # the emulator went away mid-run: the row says so
        reason = f"not run to the end: {type(exc).__name__} (is the BigQuery emulator up?)"
        log.exception("run_backfill failed")
        return BeamBackfill(None, {}, spent, reason)
    finally:  # the emulator holds tables in memory: give the space back
        with contextlib.suppress(Exception):
            client.delete_dataset(BENCH_DATASET, delete_contents=True, not_found_ok=True)
    return BeamBackfill(wall_s, summary.as_dict(), spent, cpu_s=used())
