"""Every stage label of the streaming job and the backfill, and its resource hints, as
recorded in stage_labels.json: Dataflow's `--update` maps a running job's state by
label, so a renamed stage is a breaking change that must be made on purpose (regenerate
the file with `python -m tests.unit.jobs.test_stage_labels`)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apache_beam as beam

from common.archive_read import discover
from feature_store.config import PlatformConfig
from feature_store.reference import REGISTRY
from feature_store.schemas import change_point_table
from jobs.backfill import plans_for, wire_backfill
from jobs.online_sink import online_sink
from jobs.runner import make_pipeline
from jobs.stream import StreamSettings, build_stream

GOLDEN = Path(__file__).with_name("stage_labels.json")
Labels = list[list[Any]]


def _labels(pipeline: beam.Pipeline) -> Labels:
    found: Labels = []

    class Visitor(beam.pipeline.PipelineVisitor):  # type: ignore[misc]
        def enter_composite_transform(self, node: Any) -> None:
            self.visit_transform(node)

        def visit_transform(self, node: Any) -> None:
            if node.full_label:
                hints = {k: v.decode() for k, v in sorted(node.resource_hints.items())}
                found.append([node.full_label, hints])

    pipeline.visit(Visitor())
    return found


def built(state_dir: Path) -> dict[str, Labels]:
    config = PlatformConfig.local_default(state_dir)
    plans, _ = plans_for(REGISTRY, None)
    sink = online_sink(config)
    out: dict[str, Labels] = {}
    stream = make_pipeline([], streaming=True)
    build_stream(stream, config, REGISTRY, plans, StreamSettings(), sink, started_us=1)
    out["stream"] = _labels(stream)
    for name in ("review-events", "user-events"):
        (state_dir / f"{name}.jsonl").touch()
    files = discover(
        [str(state_dir / "review-events.jsonl"), str(state_dir / "user-events.jsonl")],
        ["review-events", "user-events"],
    )
    tables = {p.view: change_point_table(REGISTRY, p.view, config.features_dataset) for p in plans}
    end = datetime(2026, 2, 1, tzinfo=UTC)
    for name, source, start in (
        ("backfill_files", files, None),
        ("backfill_archive", None, datetime(2026, 1, 1, tzinfo=UTC)),
    ):
        batch = make_pipeline([])
        wire_backfill(
            batch, config, REGISTRY, source, plans, tables, (start, end), sink, "dead", "client"
        )
        out[name] = _labels(batch)
    return out


def test_stage_labels_and_hints_are_unchanged(tmp_path: Path) -> None:
    expected = json.loads(GOLDEN.read_text())
    assert built(tmp_path) == expected


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps(built(Path(tmp)), indent=1, sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {GOLDEN}\n")
