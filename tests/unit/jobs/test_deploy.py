"""The deployed graphs: each stage's resource hints as Dataflow receives them (read back
from `to_runner_api()`), and the Dataflow options."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from common.job_graph import Stage, stages
from feature_store.config import PlatformConfig
from feature_store.errors import ConfigError
from feature_store.reference import REGISTRY
from jobs.deploy import DataflowTarget, build_job, dry_run

GB = "GB"
ACCELERATOR = "beam:resources:accelerator:v1"
T4 = "type:nvidia-tesla-t4;count:1;install-nvidia-driver"

# What each stage must ask for, written out here rather than read from common.stages.
STREAM = {
    "ReadEvents": "4GB",
    "CountReceived": "4GB",
    "ValidateEvents": "4GB",
    "DeadLetters": "4GB",
    "ArchiveEvents": "4GB",
    "Deduplicate": "8GB",
    "KeyByViewAndEntity": "8GB",
    "AsBatches": "8GB",
    "ReadHistory": "4GB",
    "ValidateHistory": "4GB",
    "KeyHistory": "4GB",
    "HistoryBatches": "16GB",
    "EngineerFeatures": "32GB",
    "VectorFeatures": "16GB",
    "LateEvents": "4GB",
    "ToOnlineRows": "4GB",
    "WriteOnline": "4GB",
    "RejectedRows": "4GB",
    "IndexVectors": "4GB",
    "ApplyProjections": "16GB",
    "ProjectHistory": "16GB",
}
BACKFILL = {
    "ReadArchive": "4GB",
    "SnapshotUnbounded": "32GB",
    "CountLines": "4GB",
    "ValidateEvents": "4GB",
    "DeadLetterJson": "4GB",
    "WriteDeadLetters": "4GB",
    "Deduplicate": "8GB",
    "KeyForFeatures": "8GB",
    "EngineerFeatures": "32GB",
    "VectorFeatures": "16GB",
    "WriteOffline": "4GB",
    "LatestRows": "4GB",
    "ToOnlineRows": "4GB",
    "WriteOnline": "4GB",
    "RejectedRows": "4GB",
    "IndexVectors": "4GB",
    "FitProjections": "16GB",
    "ApplyProjections": "16GB",
}
# The model stage: routing, tokenising and joining at 4 GB, its inference steps on a T4
# worker with 16 GB (the only accelerator of either job).
MODEL_STAGE = "ModelFeatures"
# Steps that are pure plumbing: a shuffle, a flatten; they take the job's default.
PLUMBING = {
    "GroupHistory",
    "WithHistory",
    "ToVectorStage",
    "ToOutputStage",
    "AllDeadLetters",
}


def _target(job: str) -> DataflowTarget:
    return DataflowTarget(
        project="my-proj",
        region="europe-west1",
        temp_location="gs://my-proj-dataflow/tmp",
        job_name=f"feature-store-{job}",
        image="europe-west1-docker.pkg.dev/my-proj/feature-store/worker:1",
        service_account=f"feature-store-{job}@my-proj.iam.gserviceaccount.com",
    )


def _graph(job: str, args: list[str], state: Path) -> dict[str, Stage]:
    config = replace(
        PlatformConfig.local_default(state).for_project("my-proj"),
        vector_index_url="http://qdrant.internal:6333",
    )
    pipeline = beam.Pipeline(options=PipelineOptions([*args, "--dry_run=True"]))
    build_job(job, pipeline, config, REGISTRY, now=datetime(2026, 1, 1, tzinfo=UTC))
    return {s.label: s for s in stages(pipeline.to_runner_api())}


@pytest.fixture(scope="module", params=["stream", "backfill"])
def deployed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    job = request.param
    state = tmp_path_factory.mktemp(job)
    return job, _graph(job, _target(job).pipeline_args(job), state)


def test_every_named_stage_gets_its_hint(deployed) -> None:
    job, graph = deployed
    expected = STREAM if job == "stream" else BACKFILL
    assert set(graph) == set(expected) | {MODEL_STAGE} | (PLUMBING & set(graph))
    for label, ram in expected.items():
        assert graph[label].min_ram == (ram,), label
        assert graph[label].accelerator == (), label
    assert graph[MODEL_STAGE].min_ram == ("4GB", "16GB")
    assert graph[MODEL_STAGE].accelerator == (T4,)


def test_the_accelerator_is_on_the_inference_steps_only(tmp_path: Path) -> None:
    """Read from the proto a runner receives: every leaf transform with the T4 hint is
    under the model stage's `Inference` (one per input: the stream's live records and
    its warm start), and every inference leaf has it."""
    for job in ("stream", "backfill"):
        config = PlatformConfig.local_default(tmp_path / job).for_project("my-proj")
        pipeline = beam.Pipeline(options=PipelineOptions(["--dry_run=True"]))
        build_job(job, pipeline, config, REGISTRY, now=datetime(2026, 1, 1, tzinfo=UTC))
        proto = pipeline.to_runner_api()
        envs = proto.components.environments
        accelerated, inference = set(), set()
        for t in proto.components.transforms.values():
            if t.subtransforms or not t.environment_id:
                continue
            if ACCELERATOR in envs[t.environment_id].resource_hints:
                accelerated.add(t.unique_name)
            if "/Inference/" in t.unique_name:
                inference.add(t.unique_name)
        computes = {n.split("/")[1] for n in inference}
        assert computes == ({"Compute", "Compute1"} if job == "stream" else {"Compute"}), job
        assert any("BeamML_RunInference" in n for n in inference), job
        assert accelerated == inference, job
        assert all(n.startswith(f"{MODEL_STAGE}/") for n in accelerated), job


def test_no_leaf_transform_runs_without_a_hint(deployed) -> None:
    _, graph = deployed
    assert all(not s.unhinted for s in graph.values()), [
        (s.label, s.unhinted) for s in graph.values() if s.unhinted
    ]


def test_fusion_breaks_separate_the_feature_stage(deployed) -> None:
    job, graph = deployed
    breaks = {label for label, s in graph.items() if s.fusion_break}
    if job == "backfill":
        assert {
            "Deduplicate",
            "ToVectorStage",
            "ToOutputStage",
            "EngineerFeatures",
        } <= breaks
        # the keying rides with de-duplication: records cross one shuffle, not two
        assert "ValidateEvents" not in breaks and "KeyForFeatures" not in breaks
        assert graph["KeyForFeatures"].min_ram == graph["Deduplicate"].min_ram
    else:  # keyed state shuffles before de-duplication and the windows
        assert {"Deduplicate", "EngineerFeatures", "GroupHistory"} <= breaks
        assert "WriteOnline" not in breaks


def test_hints_are_explicit_without_the_job_default(tmp_path: Path) -> None:
    graph = _graph("backfill", [], tmp_path)
    for label, ram in BACKFILL.items():
        assert graph[label].min_ram == (ram,), label
    assert graph["ToVectorStage"].unhinted  # plumbing relies on the job's default


def test_dataflow_options() -> None:
    args = _target("stream").pipeline_args("stream")
    assert "--dataflow_service_options=enable_prime" in args
    assert "--enable_streaming_engine" in args and "--streaming" in args
    assert "--sdk_location=container" in args
    assert not any("worker_accelerator" in a for a in args)
    batch = _target("backfill").pipeline_args("backfill")
    assert "--streaming" not in batch and "--enable_streaming_engine" not in batch
    update = DataflowTarget(
        project="my-proj",
        region="r",
        temp_location="gs://b/t",
        job_name="feature-store-stream",
        update=True,
        transform_name_mapping={"EngineerFeatures": "ComputeFeatures"},
    ).pipeline_args("stream")
    mapping = next(a for a in update if a.startswith("--transform_name_mapping="))
    assert json.loads(mapping.split("=", 1)[1]) == {"EngineerFeatures": "ComputeFeatures"}
    assert "--update" in update


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("job_name", "Feature_Store", "Feature_Store"),
        ("temp_location", "/tmp/x", "/tmp/x"),
        ("region", "", "''"),
    ],
)
def test_bad_targets_name_the_value(field: str, value: str, named: str) -> None:
    kwargs = {"project": "p", "region": "r", "temp_location": "gs://b/t", "job_name": "j"}
    kwargs[field] = value
    with pytest.raises(ConfigError, match=named):
        DataflowTarget(**kwargs)


def test_dry_run_writes_the_proto_it_reports(tmp_path: Path) -> None:
    from apache_beam.portability.api import beam_runner_api_pb2

    config = PlatformConfig.local_default(tmp_path).for_project("my-proj")
    out = tmp_path / "backfill.pb"
    report = dry_run("backfill", _target("backfill"), config, REGISTRY, out)
    proto = beam_runner_api_pb2.Pipeline.FromString(out.read_bytes())
    labels = [s.label for s in stages(proto)]
    assert labels[0] == "ReadArchive"
    for label in labels:
        assert label in report
    assert re.search(r"\n  EngineerFeatures +32GB ", report), report


def _readme_boxes(subgraph: str) -> set[str]:
    """The stage boxes of one job in the README's pipeline picture (storage shapes left
    out): a box is `ID[Label]` or `ID[Label: remark]`."""
    import re

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    body = readme.split(f"subgraph {subgraph}[", 1)[1].split("\n  end\n", 1)[0]
    return {m.split(":")[0] for m in re.findall(r"\w+\[([^\[(\]][^\]]*)\]", body)}


def test_the_readme_picture_is_the_graph_as_built(deployed) -> None:
    job, graph = deployed
    assert _readme_boxes("stream" if job == "stream" else "batch") == set(graph)
