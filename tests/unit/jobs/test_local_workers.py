"""`jobs.backfill.local_workers`: how many worker processes a local backfill asks Beam's
runner for, from the input's size, the machine's cores and the caller's own options."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.archive_read import ArchiveFile, discover
from common.vector_index import INDEX_DIR
from feature_store.config import PlatformConfig
from feature_store.errors import ConfigError
from feature_store.reference import REGISTRY
from jobs import backfill
from jobs.backfill import TWO_WORKERS, folder_index_of, input_events, local_workers, plans_for

TOPICS = [s.topic for s in REGISTRY.sources]
LINE = b'{"event_type": "review_created"}'.ljust(249) + b"\n"  # 250 bytes


@pytest.fixture
def config(tmp_path: Path) -> PlatformConfig:
    return PlatformConfig.local_default(tmp_path / "state")


@pytest.fixture
def files(tmp_path: Path) -> list[ArchiveFile]:
    """400 review events in one JSON-lines file."""
    return discover(_jsonl(tmp_path / "in", 400), TOPICS)


def sized_for_workers(patch: pytest.MonkeyPatch, from_events: int, cores: int = 2) -> None:
    """Makes `local_workers` choose two workers from `from_events` input events, as on
    a machine of `cores` cores (also used by the integration tests that run two)."""
    patch.setattr(backfill, "TWO_WORKERS_FROM_EVENTS", from_events)
    patch.setattr(backfill.os, "cpu_count", lambda: cores)


def _jsonl(folder: Path, lines: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "review-events.jsonl").write_bytes(LINE * lines)
    return [str(folder)]


def test_json_lines_are_estimated_from_their_size(files, config) -> None:
    assert input_events(config, REGISTRY, files) == 400


def test_gzipped_lines_count_five_times_their_size(tmp_path: Path, config) -> None:
    (tmp_path / "user-events.jsonl.gz").write_bytes(gzip.compress(LINE * 1000))
    files = discover([str(tmp_path)], TOPICS)
    size = (tmp_path / "user-events.jsonl.gz").stat().st_size
    assert input_events(config, REGISTRY, files) == size // 50


def test_parquet_files_give_their_row_counts(tmp_path: Path, config) -> None:
    pq.write_table(pa.table({"data": ["x"] * 123}), tmp_path / "review-events-0.parquet")
    pq.write_table(pa.table({"data": ["y"] * 77}), tmp_path / "review-events-1.parquet")
    files = discover([str(tmp_path)], TOPICS)
    assert input_events(config, REGISTRY, files) == 200


def test_a_small_input_runs_one_worker(files, config) -> None:
    assert local_workers(config, REGISTRY, files, []) == (1, ())


def test_a_large_input_runs_two_workers_on_two_cores(
    files, config, monkeypatch: pytest.MonkeyPatch
) -> None:
    sized_for_workers(monkeypatch, 400, cores=2)
    assert local_workers(config, REGISTRY, files, []) == (2, TWO_WORKERS)
    sized_for_workers(monkeypatch, 401, cores=2)
    assert local_workers(config, REGISTRY, files, []) == (1, ())


def test_one_core_runs_one_worker(files, config, monkeypatch: pytest.MonkeyPatch) -> None:
    sized_for_workers(monkeypatch, 1, cores=1)
    assert local_workers(config, REGISTRY, files, []) == (1, ())


def test_the_callers_worker_options_and_runner_win(
    files, config, monkeypatch: pytest.MonkeyPatch
) -> None:
    sized_for_workers(monkeypatch, 1, cores=2)
    assert local_workers(config, REGISTRY, files, ["--direct_num_workers=1"]) == (1, ())
    three = ["--direct_num_workers=3", "--direct_running_mode=multi_processing"]
    assert local_workers(config, REGISTRY, files, three) == (3, ())
    dataflow = ["--runner=DataflowRunner", "--project=p", "--region=r"]
    assert local_workers(config, REGISTRY, files, dataflow) == (None, ())


def test_an_input_it_cannot_size_runs_one_worker(config, monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive's row counts come from BigQuery: when nothing answers at its endpoint
    (a port nobody listens on), the estimate is unknown at once (no retries) and the
    backfill runs as for a small input."""
    sized_for_workers(monkeypatch, 1, cores=2)
    nobody = dataclasses.replace(
        config, endpoints=dataclasses.replace(config.endpoints, bigquery_port=1)
    )
    assert input_events(nobody, REGISTRY, None) is None
    assert local_workers(nobody, REGISTRY, None, []) == (1, ())


def test_a_job_writing_the_folder_index_runs_one_worker(
    tmp_path: Path, files, config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Qdrant's embedded mode locks its folder to one process: two worker processes
    would fail at the index's first write, so the choice by size gives one, and a
    caller who asks for two is told why before anything runs."""
    sized_for_workers(monkeypatch, 1, cores=2)
    folder = str(tmp_path / "vector_index")
    assert local_workers(config, REGISTRY, files, [], folder) == (1, ())
    two = list(TWO_WORKERS)
    with pytest.raises(
        ConfigError, match=r"--direct_num_workers=2: the vector index .*FEATURE_STORE_QDRANT_URL"
    ):
        local_workers(config, REGISTRY, files, two, folder)
    assert local_workers(config, REGISTRY, files, ["--direct_num_workers=1"], folder) == (1, ())


def test_the_folder_index_counts_only_when_a_model_view_runs(tmp_path: Path) -> None:
    local = PlatformConfig.local_default(tmp_path / "state")
    with_models, _ = plans_for(REGISTRY, ["review_content"])
    without, _ = plans_for(REGISTRY, ["user_review_stats"])
    assert folder_index_of(local, REGISTRY, with_models) == str(tmp_path / "state" / INDEX_DIR)
    assert folder_index_of(local, REGISTRY, without) is None
    served = dataclasses.replace(local, vector_index_url="http://127.0.0.1:6333")
    assert folder_index_of(served, REGISTRY, with_models) is None
