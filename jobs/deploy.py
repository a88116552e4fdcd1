"""Deploying the two jobs to Dataflow Prime: the same pipelines the local commands build,
with Dataflow options; a dry run that shows each stage's resources and writes the
pipeline proto without calling any cloud API.

`build_job` is the one place that calls the pipeline builders of the two jobs.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apache_beam as beam

from common.job_graph import graph_text, stages
from common.stages import DEFAULT_HINTS, as_option
from feature_store.config import PlatformConfig
from feature_store.errors import ConfigError
from feature_store.registry import Registry

log = logging.getLogger(__name__)

JOBS = ("stream", "backfill")
_JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class DataflowTarget:
    """Where and how a job runs on Dataflow Prime."""

    project: str
    region: str
    temp_location: str
    job_name: str
    staging_location: str | None = None
    image: str | None = None
    service_account: str | None = None
    network: str | None = None
    subnetwork: str | None = None
    max_workers: int | None = None
    public_ips: bool = False
    update: bool = False
    transform_name_mapping: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.project or not self.region:
            msg = f"a project and a region are needed, got {self.project!r}, {self.region!r}"
            raise ConfigError(msg)
        for name in ("temp_location", "staging_location"):
            value = getattr(self, name)
            if value is not None and not value.startswith("gs://"):
                msg = f"{name} must be a gs:// path, got {value!r}"
                raise ConfigError(msg)
        if not _JOB_NAME.match(self.job_name):
            msg = (
                "job_name must be lower-case letters, digits and hyphens, starting with a "
                f"letter, got {self.job_name!r}"
            )
            raise ConfigError(msg)
        if self.transform_name_mapping and not self.update:
            msg = f"a transform name mapping needs update=True, got {self.transform_name_mapping}"
            raise ConfigError(msg)
        if self.max_workers is not None and self.max_workers < 1:
            msg = f"max_workers must be positive, got {self.max_workers}"
            raise ConfigError(msg)

    def pipeline_args(self, job: str) -> list[str]:
        """Beam's Dataflow options for `job` ("stream" or "backfill")."""
        if job not in JOBS:
            msg = f"job must be one of {JOBS}, got {job!r}"
            raise ConfigError(msg)
        args = [
            "--runner=DataflowRunner",
            f"--project={self.project}",
            f"--region={self.region}",
            f"--temp_location={self.temp_location}",
            f"--staging_location={self.staging_location or self.temp_location}",
            f"--job_name={self.job_name}",
            # Right fitting: per-stage hints on Prime; never the worker_accelerator option.
            "--dataflow_service_options=enable_prime",
            *(f"--resource_hints={h}" for h in as_option(DEFAULT_HINTS)),
        ]
        if job == "stream":
            # Streaming Engine keeps Horizontal Autoscaling on, which right fitting of a
            # streaming job requires.
            args += ["--streaming", "--enable_streaming_engine"]
        if self.image:
            args += [f"--sdk_container_image={self.image}", "--sdk_location=container"]
        if self.service_account:
            args.append(f"--service_account_email={self.service_account}")
        if self.network:
            args.append(f"--network={self.network}")
        if self.subnetwork:
            args.append(f"--subnetwork={self.subnetwork}")
        if not self.public_ips:
            args.append("--no_use_public_ips")
        if self.max_workers:
            args.append(f"--max_num_workers={self.max_workers}")
        if self.update:
            args.append("--update")
            if self.transform_name_mapping:
                mapping = json.dumps(dict(self.transform_name_mapping), sort_keys=True)
                args.append(f"--transform_name_mapping={mapping}")
        return args


def build_job(
    job: str,
    pipeline: beam.Pipeline,
    config: PlatformConfig,
    registry: Registry,
    *,
    views: Sequence[str] | None = None,
    dead_letters: str | None = None,
    allowed_lateness_s: float = 300.0,
    now: datetime | None = None,
) -> dict[str, str]:
    """Wires `job` into `pipeline` exactly as the local command does (`build_stream`,
    `wire_backfill`: its archive reader, online sink and settings; messages without a
    publish time count as received at `now`); returns the views it skipped, with the
    reason."""
    from jobs.backfill import plans_for, wire_backfill
    from jobs.online_sink import online_sink
    from jobs.stream import StreamSettings, build_stream

    now = now or datetime.now(UTC)
    plans, skipped = plans_for(registry, views)
    if job == "stream":
        settings = StreamSettings(views=tuple(views or ()), allowed_lateness_s=allowed_lateness_s)
        started_us = int(now.timestamp() * 1_000_000)
        build_stream(pipeline, config, registry, plans, settings, online_sink(config), started_us)
    elif job == "backfill":
        from feature_store.schemas import change_point_table

        tables = {
            p.view: change_point_table(registry, p.view, config.features_dataset) for p in plans
        }
        dead = dead_letters or str(
            config.state_dir / "dead_letters" / f"backfill-{uuid.uuid4().hex[:12]}"
        )
        from feature_store.events import to_micros

        sink, span = online_sink(config), (None, now)
        wire_backfill(
            pipeline,
            config,
            registry,
            None,
            plans,
            tables,
            span,
            sink,
            dead,
            "client",
            to_micros(now),
        )
    else:
        msg = f"job must be one of {JOBS}, got {job!r}"
        raise ConfigError(msg)
    return skipped


def dry_run(
    job: str,
    target: DataflowTarget,
    config: PlatformConfig,
    registry: Registry,
    proto_path: Path,
) -> str:
    """Builds the job with its Dataflow options, writes the pipeline proto to
    `proto_path` and returns the report. Nothing is submitted."""
    from apache_beam.options.pipeline_options import PipelineOptions

    # Beam's own dry-run flag skips the option checks that call Cloud Storage.
    options = PipelineOptions([*target.pipeline_args(job), "--dry_run=True"])
    pipeline = beam.Pipeline(options=options)
    skipped = build_job(job, pipeline, config, registry)
    proto = pipeline.to_runner_api()
    proto_path.parent.mkdir(parents=True, exist_ok=True)
    proto_path.write_bytes(proto.SerializeToString())
    report = graph_text(job, stages(proto), skipped)
    args = " ".join(target.pipeline_args(job))
    return f"{report}\noptions: {args}\npipeline proto: {proto_path}"


def launch(
    job: str,
    target: DataflowTarget,
    config: PlatformConfig,
    registry: Registry,
    *,
    drain_running: bool = False,
) -> str:
    """Submits the job; with `drain_running`, first drains the running job of the same
    name and waits until it has stopped (a replacement whose state is not compatible:
    the new job warm-starts from the archive). Returns the new job's id."""
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(target.pipeline_args(job))
    if drain_running:
        drain(options, target.job_name)
    pipeline = beam.Pipeline(options=options)
    build_job(job, pipeline, config, registry)
    result = pipeline.run()
    return str(getattr(result, "job_id", lambda: "?")())


def drain(options: Any, job_name: str, *, poll_s: float = 15.0, timeout_s: float = 3600) -> None:
    """Drains the running Dataflow job called `job_name` and waits for it to finish."""
    from apache_beam.runners.dataflow.internal.apiclient import DataflowApplicationClient

    client = DataflowApplicationClient(options)
    job_id = client.job_id_for_name(job_name)
    log.info("draining %s (%s)", job_name, job_id)
    client.modify_job_state(job_id, "JOB_STATE_DRAINING")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.get_job(job_id).current_state.name
        if state in ("JOB_STATE_DRAINED", "JOB_STATE_CANCELLED", "JOB_STATE_FAILED"):
            log.info("%s is %s", job_name, state)
            return
        time.sleep(poll_s)
    msg = f"job {job_name} ({job_id}) did not drain within {timeout_s:.0f} s"
    raise ConfigError(msg)
