"""The accelerator hint sits on the inference transforms' environment and nowhere else.

Read from the portable pipeline proto (what a runner receives): each transform's
environment and its resource hints. Beam issue #36088 once lost the hints of a
`RunInference` wrapped by `with_exception_handling()`; the wrapper is in place here.
"""

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.resources import AcceleratorHint, MinRamHint

from common.inference.stage import (
    T4,
    ComputeModelFeatures,
    CpuInference,
    Inference,
    InferenceSettings,
)
from common.stages import Stage

ACCEL = AcceleratorHint.urn
RAM = MinRamHint.urn
STAGE = "Models"


def _proto():
    p = beam.Pipeline(options=PipelineOptions([]))
    reviews = p | "Read" >> beam.Create([{"event_id": "e", "text": "fine"}])
    out = reviews | STAGE >> ComputeModelFeatures(InferenceSettings(min_ram="20GB"))
    _ = out["features"] | "Write" >> beam.Map(print)
    _ = out["dead_letter"] | "WriteDead" >> beam.Map(print)
    return p.to_runner_api()


def test_accelerator_only_on_the_inference_transforms() -> None:
    proto = _proto()
    envs = proto.components.environments
    inference, others = [], []
    for t in proto.components.transforms.values():
        if t.subtransforms or not t.environment_id:
            continue  # composites and runner-native transforms run nowhere themselves
        hints = envs[t.environment_id].resource_hints
        under = t.unique_name.startswith(f"{STAGE}/Inference/")
        (inference if under else others).append((t.unique_name, dict(hints)))
    names = [n for n, _ in inference]
    assert any("BeamML_RunInference" in n for n in names), names
    assert any("Batch_semantic" in n for n in names), names
    assert any("Batch_paraphrase" in n for n in names), names
    for name, hints in inference:
        assert hints.get(ACCEL) == T4.encode(), name
        assert hints.get(RAM) == str(20 * 10**9).encode(), name
    for name, hints in others:
        assert ACCEL not in hints, name
        assert RAM not in hints, name
    assert any(n.startswith(f"{STAGE}/Tokenise") for n, _ in others)
    assert any(n.startswith(f"{STAGE}/Join") for n, _ in others)


def test_no_accelerator_hint_when_none_is_set() -> None:
    p = beam.Pipeline(options=PipelineOptions([]))
    _ = p | beam.Create([]) | ComputeModelFeatures(InferenceSettings(accelerator=None))
    proto = p.to_runner_api()
    for env in proto.components.environments.values():
        assert ACCEL not in env.resource_hints


def test_the_stage_owns_its_hints_without_an_override() -> None:
    p = beam.Pipeline(options=PipelineOptions([]))
    _ = p | beam.Create([]) | STAGE >> ComputeModelFeatures(InferenceSettings())
    proto = p.to_runner_api()
    envs = proto.components.environments
    run = [
        t
        for t in proto.components.transforms.values()
        if "BeamML_RunInference" in t.unique_name and t.environment_id
    ]
    assert run
    for t in run:
        hints = envs[t.environment_id].resource_hints
        assert hints.get(ACCEL) == T4.encode(), t.unique_name
        assert hints.get(RAM) == str(16 * 10**9).encode(), t.unique_name


def test_inference_is_a_stage_with_the_t4_hints() -> None:
    stage = Inference(InferenceSettings())
    assert isinstance(stage, Stage)
    hints = stage.get_resource_hints()
    assert hints[ACCEL] == T4.encode()
    assert hints[RAM] == str(16 * 10**9).encode()
    assert ACCEL not in CpuInference(InferenceSettings(accelerator=None)).get_resource_hints()
