"""The backfill's "where the time goes" text: the write's cost, read off like-for-like runs."""

from __future__ import annotations

from bench.backfill_runs import BeamBackfill
from bench.bench_backfill import _one_worker, _where

STAGES = {"validate": 10.0, "deduplicate + group": 6.0, "core": 2.0}
DUCK = (8.0, {"user_review_stats": (2.0, None)})


def _text(with_write: float, without: float) -> str:
    beam = BeamBackfill(
        wall_s=with_write,
        summary={},
        emulator_s={"stage_rows": 1.5, "commit_staged": 0.5},
    )
    return _where(1_000_000, STAGES, DUCK, beam, without)


def test_the_write_adds_what_its_run_took_over_the_run_without_it() -> None:
    text = _text(34.6, 29.9)
    assert "on one worker like the run without it: 34.6 s" in text
    assert "load jobs took 1.5 s and the INSERT…SELECT commit 0.5 s (6% of the run)" in text
    assert "The rest of the 4.7 s the write adds" in text


def test_a_write_run_no_longer_than_the_plain_one_says_so_instead_of_zero() -> None:
    text = _text(29.3, 29.9)
    assert "The run without the write took 0.6 s longer" in text
    assert "The rest of the" not in text


def test_the_write_is_read_off_the_one_worker_run_whichever_is_the_default() -> None:
    two = BeamBackfill(wall_s=30.0, summary={"local_workers": 2}, emulator_s={})
    one = BeamBackfill(wall_s=34.0, summary={"local_workers": 1}, emulator_s={"stage_rows": 1.0})
    assert _one_worker(two, one, default_workers=2) is one
    assert _one_worker(one, two, default_workers=1) is one
