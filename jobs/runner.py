"""Pipeline construction shared by the jobs: options from the command line, and a local
runner that needs no download when none is named."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner, RunnerResult


def size_flushed_worker_input() -> None:
    """Makes Beam's local runner send its SDK worker processes their input in size-based
    flushes only.

    With `--direct_running_mode=multi_processing` the runner writes each bundle's input
    to a gRPC output stream that a background thread also flushes every
    `worker_handlers.DATA_BUFFER_TIME_LIMIT_MS` (1,000 ms in Beam 2.77). That flush takes
    the buffer's bytes and then clears the buffer without holding off the writer
    (`data_plane.TimeBasedBufferingClosableOutputStream`), so whatever the runner writes
    between the two is dropped: whole input chunks (lists of records) vanish from the
    bundle, without an error, more often when the machine is loaded and writing a
    bundle's input spans a flush. With 0, the streams flush by size and at their close,
    as the single-process runner does; a batch job loses nothing by that.
    """
    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0


WORKER_LOG = "apache_beam.runners.portability.local_job_service"
"""The logger Beam's local runner relays its worker processes' log records through."""


class WithoutStagingNotice(logging.Filter):
    """Drops the warning every local worker process logs as it starts, "No
    semi_persistent_directory found: User registered objects ... may not be effective":
    the local runner stages nothing, its workers import the project from its
    environment and read every coder from the pipeline itself (their rows are checked
    against one worker's in the tests). Every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No semi_persistent_directory found" not in record.getMessage()


def quiet_worker_start() -> None:
    """Installs `WithoutStagingNotice` on the worker log (once)."""
    relay = logging.getLogger(WORKER_LOG)
    if not any(isinstance(f, WithoutStagingNotice) for f in relay.filters):
        relay.addFilter(WithoutStagingNotice())


class LocalBatchRunner(FnApiRunner):
    """Beam's in-process batch runner, without the stages' resource hints.

    Resource hints ask Dataflow Prime for right-sized workers; the local runner has one
    machine to give, but it still makes an environment of each distinct hint set, and
    steps in different environments are never fused: every edge between two of them
    (a stage and the Reshuffle beside it, validation and its line count) encodes and
    decodes each element once more, and on worker processes
    (`--direct_running_mode=multi_processing`) each environment starts
    `--direct_num_workers` processes of its own. Without the hints, the local runner
    fuses what Dataflow would fuse on equal hints and runs one set of workers.
    """

    def run_via_runner_api(
        self,
        pipeline_proto: beam_runner_api_pb2.Pipeline,
        options: PipelineOptions,
    ) -> RunnerResult:
        pipeline_proto = without_resource_hints(pipeline_proto)
        return super().run_via_runner_api(pipeline_proto, options)


def without_resource_hints(
    pipeline_proto: beam_runner_api_pb2.Pipeline,
) -> beam_runner_api_pb2.Pipeline:
    """A copy of `pipeline_proto` whose environments carry no resource hints (Beam
    then merges the environments that differed only by them)."""
    stripped = beam_runner_api_pb2.Pipeline()
    stripped.CopyFrom(pipeline_proto)
    for environment in stripped.components.environments.values():
        environment.resource_hints.clear()
    return stripped


def make_pipeline(args: Sequence[str], *, streaming: bool = False) -> beam.Pipeline:
    """A pipeline on the runner named in `args`; locally the in-process portable runner
    (batch: `LocalBatchRunner`, without the stages' resource hints).

    Beam's DirectRunner first tries to fetch the Prism runner binary from the network;
    without `--runner` we take the in-process runner it would fall back to anyway (batch)
    or the DirectRunner's streaming implementation (streaming) directly, with less
    bookkeeping per bundle (`jobs.local_runner`).
    """
    size_flushed_worker_input()
    quiet_worker_start()
    options = PipelineOptions(list(args))
    standard = options.view_as(StandardOptions)
    if streaming:
        standard.streaming = True
    if standard.runner:
        return beam.Pipeline(options=options)
    if streaming:
        from jobs.local_runner import LocalStreamingRunner

        return beam.Pipeline(runner=LocalStreamingRunner(), options=options)
    return beam.Pipeline(runner=LocalBatchRunner(), options=options)
