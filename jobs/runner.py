"""Pipeline construction shared by the jobs: options from the command line, and a local
runner that needs no download when none is named."""

from __future__ import annotations

from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions


def make_pipeline(args: Sequence[str], *, streaming: bool = False) -> beam.Pipeline:
    """A pipeline on the runner named in `args`; locally the in-process portable runner.

    Beam's DirectRunner first tries to fetch the Prism runner binary from the network;
    without `--runner` we take the in-process runner it would fall back to anyway (batch)
    or the DirectRunner's streaming implementation (streaming) directly, with less
    bookkeeping per bundle (`jobs.local_runner`).
    """
    options = PipelineOptions(list(args))
    standard = options.view_as(StandardOptions)
    if streaming:
        standard.streaming = True
    if standard.runner:
        return beam.Pipeline(options=options)
    if streaming:
        from jobs.local_runner import LocalStreamingRunner

        return beam.Pipeline(runner=LocalStreamingRunner(), options=options)
    from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

    return beam.Pipeline(runner=FnApiRunner(), options=options)
