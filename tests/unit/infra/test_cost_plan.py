"""`cost-plan` on the talk's example, checked against arithmetic written out here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feature_store.errors import ConfigError
from infra.cost_plan import PRICES, Profile, load_prices, plan, report, talk_example

PRICE_DATA = json.loads(PRICES.read_text())


def test_prices_carry_their_date_region_and_source() -> None:
    assert PRICE_DATA["region"] and PRICE_DATA["currency"] == "USD"
    assert PRICE_DATA["consulted"].count("-") == 2
    assert any("cloud.google.com/dataflow/pricing" in s for s in PRICE_DATA["sources"])


def test_worker_and_gpu_prices_are_the_pinned_beams_published_ones() -> None:
    """Beam ships the pricing page's us-central1 worker and GPU prices for its own cost
    benchmarks; the file's classic and GPU figures must be those of the pinned Beam."""
    from apache_beam.testing.load_tests import dataflow_cost_consts as beam

    assert PRICE_DATA["region"] == "us-central1"
    assert PRICE_DATA["classic"] == {
        "batch": {"vcpu_hour": beam.VCPU_PER_HR_BATCH, "memory_gb_hour": beam.MEM_PER_GB_HR_BATCH},
        "streaming": {
            "vcpu_hour": beam.VCPU_PER_HR_STREAMING,
            "memory_gb_hour": beam.MEM_PER_GB_HR_STREAMING,
        },
    }
    assert PRICE_DATA["gpu_hour"] == {
        "nvidia-tesla-t4": beam.T4_PER_GPU_PER_HOUR,
        "nvidia-l4": beam.L4_PER_GPU_PER_HOUR,
    }
    assert "not verified" in PRICE_DATA["verified"]["prime"]  # Beam has no DCU price


def test_talk_example_by_hand() -> None:
    cpu, mem = 0.056, 0.003557  # classic batch, per vCPU-hour and GB-hour
    gpu, dcu = 0.42, 0.06  # T4 per hour, Prime batch DCU per hour
    assert PRICE_DATA["classic"]["batch"] == {"vcpu_hour": cpu, "memory_gb_hour": mem}
    assert PRICE_DATA["gpu_hour"]["nvidia-tesla-t4"] == gpu
    assert PRICE_DATA["prime"]["dcu_hour"]["batch"] == dcu
    # Uniform: 4 stages x 1 h on one n2-highmem-4-like worker (4 vCPU, 32 GB) + a T4.
    uniform = 4 * (4 * cpu + 32 * mem + gpu)
    # Right-fitted: a DCU is 1 vCPU + 4 GB, split in the ratio of the classic prices.
    share = cpu / (cpu + 4 * mem)
    per_gb = (1 - share) / 4
    fitted = (
        (1 * share + 4 * per_gb) * dcu  # input I/O: 1 vCPU, 4 GB
        + (4 * share + 32 * per_gb) * dcu  # preprocessing: 4 vCPU, 32 GB
        + (1 * share + 8 * per_gb) * dcu
        + gpu  # inference: 1 vCPU, 8 GB, a T4
        + (1 * share + 4 * per_gb) * dcu  # output I/O
    )
    result = plan(talk_example(), load_prices())
    assert result.uniform_cost == pytest.approx(uniform)
    assert result.right_fitted_cost == pytest.approx(fitted)
    assert result.saving == pytest.approx(1 - fitted / uniform)
    assert 0.69 < result.saving < 0.71  # the talk claims about 40%: see README


def test_saving_shrinks_as_the_gpu_stage_dominates() -> None:
    base = talk_example()
    long_inference = Profile(
        job="batch",
        stages=tuple(
            s if s.name != "inference" else type(s)(**{**s.__dict__, "wall_s": 8 * 3600})
            for s in base.stages
        ),
    )
    prices = load_prices()
    assert plan(long_inference, prices).saving < plan(base, prices).saving


def test_report_prints_both_layouts_saving_and_assumptions() -> None:
    text = report(talk_example(), plan(talk_example(), load_prices()))
    for needle in ("uniform pool", "right-fitted pools", "saving:", "assumptions:", "T4"):
        assert needle in text


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"stages": []}, "at least one stage"),
        (
            {"job": "nightly", "stages": [{"name": "a", "wall_s": 1, "peak_memory_gb": 1}]},
            "nightly",
        ),
        ({"stages": [{"name": "a", "wall_s": -1, "peak_memory_gb": 1}]}, "-1"),
        ({"stages": [{"name": "a"}]}, "not a profile"),
    ],
)
def test_bad_profiles_name_the_value(data: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Profile.from_json(data)


def test_a_profile_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {"job": "streaming", "stages": [{"name": "a", "wall_s": 3600, "peak_memory_gb": 2}]}
        )
    )
    profile = Profile.from_json(json.loads(path.read_text()))
    result = plan(profile, load_prices())
    # One 1-vCPU, 2 GB stage for an hour, no GPU: classic streaming vs Prime streaming DCUs.
    s = PRICE_DATA["classic"]["streaming"]
    assert result.uniform_cost == pytest.approx(s["vcpu_hour"] + 2 * s["memory_gb_hour"])
