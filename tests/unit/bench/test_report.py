"""The report's goals: each verdict comes from the run's own figures."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType

import pytest

from bench.freshness import Ceiling, Freshness, Phase, fresh_goals, fresh_text
from bench.harness import Context
from bench.report import goals_markdown, markdown


def _context() -> Context:
    ctx = Context(events=None, quick=True, seed=7, workdir=Path("."))
    ctx.current = "online"
    return ctx


def _phase(rate: float, purpose: str, held: bool, fresh_ms: list[float]) -> Phase:
    taken = int(rate * 20)
    return Phase(
        rate=rate,
        purpose=purpose,
        seconds=20.0,
        published=taken,
        steady=(taken if held else taken // 2, 20.0),
        taken_in=taken,
        fresh_ms=fresh_ms,
    )


def test_freshness_goals_follow_the_knee_and_the_p99() -> None:
    ceiling = Ceiling(published=6000, counted=6000, seconds=3.0, rate=2000.0)
    phases = [
        _phase(1200.0, "knee search", True, [100.0, 200.0]),
        _phase(2400.0, "knee search", False, [100.0, 200.0]),
        _phase(600.0, "freshness at 50% of the knee", True, [100.0] * 99 + [900.0]),
        _phase(960.0, "freshness at 80% of the knee", True, [100.0] * 98 + [1500.0] * 2),
    ]
    ctx = _context()
    fresh_goals(ctx, Freshness(ceiling=ceiling, stock=ceiling, phases=phases))
    knee, p99 = ctx.goals
    assert knee.met and "1,200 msg/s, 60% of 2,000" in knee.measured
    assert not p99.met  # 1,500 ms at 80% of the knee
    assert "1,500 ms at 960 msg/s" in p99.measured


def test_a_phase_never_drained_shows_the_wait_it_outlasted() -> None:
    ceiling = Ceiling(published=6000, counted=6000, seconds=3.0, rate=2000.0)
    drained = _phase(1200.0, "knee search", True, [100.0])
    drained.drained_s = 20.4
    never = _phase(2400.0, "knee search", False, [100.0])  # drained_s stays NaN
    text = fresh_text(Freshness(ceiling=ceiling, stock=ceiling, phases=[drained, never]))
    rows = [line for line in text.splitlines() if line.startswith("| knee search")]
    assert [row.split("|")[5].strip() for row in rows] == ["20.4", "> 50"]  # all in after s
    failed = Phase(rate=100.0, purpose="knee search", error="the job did not start")
    assert "| knee search | 100 | 0 | 0 | — |" in fresh_text(
        Freshness(ceiling=ceiling, stock=ceiling, phases=[failed])
    )


def test_no_rate_held_meets_no_goal() -> None:
    ceiling = Ceiling(published=6000, counted=6000, seconds=3.0, rate=2000.0)
    ctx = _context()
    fresh_goals(ctx, Freshness(ceiling=ceiling, stock=ceiling, phases=[]))
    assert [g.met for g in ctx.goals] == [False, False]
    assert ctx.goals[0].measured == "no rate held"


def test_the_report_lists_goals_first_with_their_verdicts() -> None:
    ctx = _context()
    ctx.goal("at most 2x the peer", "1.5x", met=True)
    ctx.goal("under 100 µs | per event", "143 µs", met=False)
    table = goals_markdown(ctx.goals)
    assert "| online | at most 2x the peer | 1.5x | met |" in table
    assert "| online | under 100 µs \\| per event | 143 µs | **NOT met** |" in table
    report = markdown([], [], [], {"CPU": "x"}, "python -m bench", ctx.goals)
    assert report.index("## Goals") < report.index("**NOT met**")
    assert "## Goals" not in markdown([], [], [], {"CPU": "x"}, "python -m bench")


def test_notes_kept_by_hand_follow_their_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import report

    (tmp_path / "state.md").write_text("Instructions per event, 01:00 run: 336,000.\n")
    monkeypatch.setattr(report, "NOTES", tmp_path)
    state, other = ModuleType("bench.bench_state"), ModuleType("bench.bench_other")
    text = markdown([state, other], [], [], {"CPU": "x"}, "python -m bench")
    notes_at = text.index("### Notes from earlier runs")
    assert text.index("## state") < notes_at < text.index("## other")
    assert "`bench/notes/state.md`" in text and "336,000" in text
    assert text.count("Notes from earlier runs") == 1


def test_the_peak_load_is_the_highest_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import harness

    samples = iter([1.0, 5.5, 2.0, 0.5])
    monkeypatch.setattr(harness.os, "getloadavg", lambda: (next(samples, 0.5), 0.0, 0.0))
    with harness.PeakLoad(every_s=0.01) as peak:
        deadline = time.monotonic() + 5
        while peak.peak < 5.5 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert peak.describe() == "5.50 (1 min)"
