"""The linalg benchmark's table: both JAX figures, each checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from bench import bench_linalg
from feature_store.core import linalg


def test_the_table_has_both_jax_figures_and_every_work() -> None:
    rows, table = bench_linalg.measure((40,), seed=3)
    header, _, *lines = table
    assert header.count("|") == 9  # eight columns
    assert "on device ms" in header
    assert len(lines) == len(bench_linalg.GROUPS)
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert all(float(c) >= 0 for c in cells[2:6]), line  # ms, to 0.1
    jax_rows = [r for r in rows if r.system == "feature-store (JAX)"]
    assert all(r.check.endswith("(on device too)") for r in jax_rows)
    assert all("ms on device" in r.variant for r in jax_rows)


@pytest.mark.parametrize("parts", list(bench_linalg.GROUPS.values()))
def test_the_on_device_results_are_the_librarys(parts: tuple[str, ...]) -> None:
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.normal(size=(bench_linalg.WIDTH, bench_linalg.LATENT)))[0].T
    x = bench_linalg._rows(rng, basis, 37)
    y = bench_linalg._rows(rng, basis, bench_linalg.OTHERS)
    library = bench_linalg._jax(parts, x, y)
    device = bench_linalg._device_result(parts, bench_linalg._on_device(parts, x, y)(), 37)
    assert device.keys() == library.keys() == set(parts)
    for part, value in library.items():
        assert device[part].shape == value.shape, part
        np.testing.assert_allclose(device[part], value, atol=1e-5, err_msg=part)


def test_the_on_device_figure_refuses_more_than_one_chunk() -> None:
    x = np.zeros((16_385, bench_linalg.WIDTH), dtype=np.float32)  # ROW_CAP + 1
    with pytest.raises(ValueError, match="16,385"):
        bench_linalg._on_device(("cosine",), x, x[:10])


def test_past_one_chunk_the_on_device_figure_is_left_out_not_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(linalg, "ROW_CAP", 30)  # 40 rows: two chunks for the library
    rows, table = bench_linalg.measure((40,), seed=3)
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == cells[7] == "—", line
    jax_rows = [r for r in rows if r.system == "feature-store (JAX)"]
    assert all("not timed on device past 30 rows" in r.variant for r in jax_rows)
    assert not any(r.check.endswith("(on device too)") for r in jax_rows)
