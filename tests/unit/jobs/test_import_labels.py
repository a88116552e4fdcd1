"""The import job's stages, as composite `offline.importer.ImportEvents`: the labels and
resource hints the importer had when it was wired inline in `jobs/importer.py`."""

from __future__ import annotations

from pathlib import Path

from feature_store.config import PlatformConfig
from feature_store.reference import REGISTRY
from jobs.importer import wire_import
from jobs.runner import make_pipeline
from tests.unit.jobs.test_stage_labels import _labels

GB4 = {"beam:resources:min_ram_bytes:v1": "4000000000"}
TOP_LEVEL = [
    ["ReadFiles", GB4],
    ["ValidateEvents", GB4],
    ["DeadLetterJson", GB4],
    ["WriteDeadLetters", GB4],
    ["KeyByEventId", {}],
    ["OnePerEventId", {}],
    *(
        [f"{stage} {topic}", {}]
        for topic in ("review-events", "user-events")
        for stage in ("Only", "Rows", "Batch", "Append")
    ),
]


def test_import_stages_keep_their_labels_and_hints(tmp_path: Path) -> None:
    paths = []
    for name in ("review-events", "user-events"):
        path = tmp_path / f"{name}.jsonl"
        path.touch()
        paths.append(str(path))
    pipeline = make_pipeline([])
    wire_import(pipeline, PlatformConfig.local_default(tmp_path), REGISTRY, paths, "dead")
    top = [[label, hints] for label, hints in _labels(pipeline) if "/" not in label]
    assert top == TOP_LEVEL
