"""`jobs.runner.LocalBatchRunner`: the local batch runner drops the stages' resource
hints, so steps that differ only in hints fuse into one stage (one set of workers),
and what the pipeline computes is unchanged."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.runners.pipeline_utils import merge_common_environments
from apache_beam.testing.util import assert_that, equal_to

from jobs.runner import LocalBatchRunner, make_pipeline, without_resource_hints


def _hinted(pipeline: beam.Pipeline) -> beam.PCollection:
    return (
        pipeline
        | "Numbers" >> beam.Create(range(100))
        | "Parse" >> beam.Map(lambda n: n + 1).with_resource_hints(min_ram="4GB")
        | "Slim" >> beam.Map(lambda n: n * 2).with_resource_hints(min_ram="32GB")
    )


def _stage_names(proto: object) -> list[str]:
    _, stages = LocalBatchRunner().create_stages(merge_common_environments(proto))
    return [stage.name for stage in stages]


def _fused(names: list[str]) -> bool:
    return any("Parse" in name and "Slim" in name for name in names)


def test_steps_that_differ_only_in_hints_fuse_locally() -> None:
    pipeline = beam.Pipeline()
    _hinted(pipeline)
    proto = pipeline.to_runner_api()
    assert not _fused(_stage_names(proto))  # with their hints: two environments
    stripped = without_resource_hints(proto)
    assert _fused(_stage_names(stripped))
    assert all(not env.resource_hints for env in stripped.components.environments.values())
    # the pipeline's own proto (what Dataflow would get) keeps its hints
    assert any(env.resource_hints for env in proto.components.environments.values())


def test_the_local_batch_pipeline_computes_the_same() -> None:
    pipeline = make_pipeline([])
    assert isinstance(pipeline.runner, LocalBatchRunner)
    with pipeline:
        assert_that(_hinted(pipeline), equal_to([(n + 1) * 2 for n in range(100)]))
