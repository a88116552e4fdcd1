"""The JAX kernels of `feature_store.core.linalg` against scikit-learn and numpy.

Work, on the same float32 matrices for every system: X of N x 384 (N = 1,000, 4,000,
16,000) against Y of 500 x 384, seeded rows shaped like embeddings (`_rows`).

- **PCA + distances**: fit a 32-component PCA on X and project X, then RBF kernel,
  cosine similarity and Euclidean distance of X against Y (the stage's whole work).
- each part alone: PCA fit + transform, RBF, cosine, Euclidean.

`--events N` runs one size, N rows.

Systems: `feature_store.core.linalg` (jitted JAX, float32, bucketed shapes; warm: the
compilation of the first call is reported apart; `pca_fit_transform` for the PCA and,
where the work wants several distances, `pairwise`, which derives all three from one
matrix product); scikit-learn as a user calls it (`PCA(n_components=32)` with its own
choice of solver, named in the rows; `pairwise.rbf_kernel` / `cosine_similarity` /
`euclidean_distances`, one call per measure); numpy, written
naively: PCA by `np.linalg.svd` of the centred matrix and distances by the broadcast
`np.sqrt(((X[:, None] - Y) ** 2).sum(-1))`, run over blocks of 128 rows of X (the whole
16,000 x 500 x 384 cube would need 12 GB). Times are the median of 3 warm repeats (one run for the
broadcast past 1,000 rows, which takes seconds);
every system uses the machine's cores its own way (XLA's thread pool, the BLAS threads).
Each JAX result is checked against scikit-learn's, its PCA with the exact full SVD
(`svd_solver="full"`; up to the sign of a component).

Two JAX figures: "JAX ms" is the library as the jobs call it, numpy in and numpy out
(padding to the bucket, the copies to the device and back included); "on device ms" runs
the same pure kernels, jitted the same way, on inputs already on JAX's device, leaving
the results there (`block_until_ready`): the kernels' own time. On a CPU the two differ
by the host's copies; on a GPU by the transfers over the bus.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from bench import gpu_record
from bench.harness import Context, Row

log = logging.getLogger(__name__)

WIDTH, OTHERS, DIM = 384, 500, 32
SIZES = ((1_000, 4_000, 16_000), (500, 2_000))  # full, quick
REPEATS = 3
BLOCK = 128
Result = dict[str, np.ndarray]


def _median_s(work: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _jax(parts: tuple[str, ...], x: np.ndarray, y: np.ndarray) -> Result:
    from feature_store.core import linalg

    out: Result = {}
    if "pca" in parts:
        out["pca"] = linalg.pca_fit_transform(x, DIM)[1]
    distances = [p for p in parts if p != "pca"]
    if len(distances) > 1:  # the stage's whole work: one product for the three
        both = linalg.pairwise(x, y)
        out |= {p: getattr(both, p) for p in distances}
    elif distances == ["rbf"]:
        out["rbf"] = linalg.rbf(x, y)
    elif distances == ["cosine"]:
        out["cosine"] = linalg.cosine_similarity(x, y)
    elif distances == ["euclidean"]:
        out["euclidean"] = linalg.euclidean_distances(x, y)
    return out


@cache
def _kernels() -> dict[str, Callable[..., Any]]:
    """`linalg`'s pure kernels, jitted as `linalg` jits them, for the on-device figure."""
    import jax

    from feature_store.core import linalg

    return {
        "pca": jax.jit(linalg.pca_kernel, static_argnames="dim"),
        "pairwise": jax.jit(linalg.pairwise_kernel),
        "rbf": jax.jit(linalg.rbf_kernel),
        "cosine": jax.jit(linalg.cosine_kernel),
        "euclidean": jax.jit(linalg.euclidean_kernel),
    }


def _on_device(parts: tuple[str, ...], x: np.ndarray, y: np.ndarray) -> Callable[[], list[Any]]:
    """The work of `_jax` on inputs already on JAX's device, padded to their buckets as
    `linalg` pads them, the results left on the device: returns the call to time, which
    returns the kernels' outputs (`_device_result` reads them)."""
    import jax
    import jax.numpy as jnp

    from feature_store.core import linalg

    def padded(m: np.ndarray) -> jax.Array:
        rows = linalg.bucket(m.shape[0])
        if rows < m.shape[0]:
            msg = f"the on-device figure needs at most {linalg.ROW_CAP:,} rows, got {m.shape[0]:,}"
            raise ValueError(msg)
        return jax.device_put(np.concatenate([m, np.zeros((rows - m.shape[0], WIDTH), m.dtype)]))

    xd, yd = padded(x), padded(y)
    mask = jax.device_put(np.arange(xd.shape[0]) < x.shape[0])
    gamma = jnp.float32(1.0 / WIDTH)
    kernels = _kernels()
    calls: list[Callable[[], Any]] = []
    if "pca" in parts:
        calls.append(lambda: kernels["pca"](xd, mask, dim=DIM))
    distances = [p for p in parts if p != "pca"]
    if len(distances) > 1:
        calls.append(lambda: kernels["pairwise"](xd, yd, gamma))
    elif distances == ["rbf"]:
        calls.append(lambda: kernels["rbf"](xd, yd, gamma))
    elif distances:
        calls.append(lambda: kernels[distances[0]](xd, yd))

    def run() -> list[Any]:
        outs = [call() for call in calls]
        jax.block_until_ready(outs)
        return outs

    run()  # compiled apart, like the library's first call
    return run


def _device_result(parts: tuple[str, ...], outs: list[Any], n: int) -> Result:
    """The on-device outputs on the host, cut to the unpadded rows, as `_jax` returns them."""
    found = iter(outs)
    out: Result = {}
    if "pca" in parts:
        out["pca"] = np.asarray(next(found)[3])[:n]
    distances = [p for p in parts if p != "pca"]
    if len(distances) > 1:
        both = dict(zip(("cosine", "euclidean", "rbf"), next(found), strict=True))
        out |= {p: np.asarray(both[p])[:n, :OTHERS] for p in distances}
    elif distances:
        out[distances[0]] = np.asarray(next(found))[:n, :OTHERS]
    return out


def _sklearn(parts: tuple[str, ...], x: np.ndarray, y: np.ndarray, solver: str = "auto") -> Result:
    """As a user writes it: `PCA(n_components=32)` with scikit-learn's own choice of
    solver (`solver="full"` gives the exact reference the results are checked against)."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import pairwise

    out: Result = {}
    if "pca" in parts:
        out["pca"] = PCA(n_components=DIM, svd_solver=solver).fit(x).transform(x)
    if "rbf" in parts:
        out["rbf"] = pairwise.rbf_kernel(x, y)
    if "cosine" in parts:
        out["cosine"] = pairwise.cosine_similarity(x, y)
    if "euclidean" in parts:
        out["euclidean"] = pairwise.euclidean_distances(x, y)
    return out


def _broadcast_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.empty((x.shape[0], y.shape[0]), dtype=x.dtype)
    for start in range(0, x.shape[0], BLOCK):
        block = x[start : start + BLOCK]
        out[start : start + BLOCK] = np.sqrt(((block[:, None] - y) ** 2).sum(-1))
    return out


def _numpy(parts: tuple[str, ...], x: np.ndarray, y: np.ndarray) -> Result:
    out: Result = {}
    if "pca" in parts:
        centred = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out["pca"] = centred @ vt[:DIM].T
    distances = None
    if {"rbf", "euclidean"} & set(parts):
        distances = _broadcast_distances(x, y)
    if "rbf" in parts and distances is not None:
        out["rbf"] = np.exp(-(distances**2) / WIDTH)
    if "cosine" in parts:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        out["cosine"] = xn @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
    if "euclidean" in parts and distances is not None:
        out["euclidean"] = distances
    return out


# PCA: relative to the largest coordinate (scikit-learn works in float32 on float32 input,
# and on isotropic noise the components are barely determined: 16,000 rows gave 3.5e-3
# absolute on coordinates of about 6); the others absolute.
TOLERANCE = {"pca": 2e-3, "rbf": 1e-5, "cosine": 1e-5, "euclidean": 1e-3}


def _check(got: Result, want: Result) -> str:
    """The largest difference per part against scikit-learn, within the stated bound."""
    notes = []
    for part, found in got.items():
        reference = want[part].astype(np.float64)
        value = found.astype(np.float64)
        if part == "pca":  # a component's sign is arbitrary
            value = value * np.sign((value * reference).sum(axis=0))
        error = float(np.abs(value - reference).max())
        if part == "pca":  # coordinates of about 5: float32 rounding is relative
            error /= max(1.0, float(np.abs(reference).max()))
        if error > TOLERANCE[part]:
            msg = f"{part}: differs from scikit-learn by {error:.2e} > {TOLERANCE[part]}"
            raise AssertionError(msg)
        notes.append(f"{part} {error:.0e}")
    return "equal to scikit-learn within: " + ", ".join(notes)


GROUPS: dict[str, tuple[str, ...]] = {
    "PCA + distances": ("pca", "rbf", "cosine", "euclidean"),
    "PCA + RBF": ("pca", "rbf"),
    "PCA fit + transform": ("pca",),
    "RBF kernel": ("rbf",),
    "cosine similarity": ("cosine",),
    "Euclidean distance": ("euclidean",),
}


def _group(
    n: int, name: str, parts: tuple[str, ...], data: tuple[np.ndarray, ...]
) -> tuple[list[Row], float]:
    """The three systems' rows of one work at one size, and JAX's on-device seconds."""
    from feature_store.core.linalg import ROW_CAP

    x, y = data
    group = f"{name}: {n:,} x {WIDTH} vs {OTHERS}"
    began = time.perf_counter()
    got = _jax(parts, x, y)
    first = time.perf_counter() - began
    jax_s = _median_s(lambda: _jax(parts, x, y), REPEATS)
    want = _sklearn(parts, x, y, solver="full")
    device_s, device_note = math.nan, f"not timed on device past {ROW_CAP:,} rows"
    if n <= ROW_CAP:  # one chunk: the kernels take the whole input in one call
        on_device = _on_device(parts, x, y)
        device_s = _median_s(on_device, REPEATS)
        _check(_device_result(parts, on_device(), n), want)  # raises beyond the tolerance
        device_note = f"{1e3 * device_s:.1f} ms on device"
    sk_s = _median_s(lambda: _sklearn(parts, x, y), REPEATS)
    naive = "euclidean" in parts or "rbf" in parts
    np_s = _median_s(lambda: _numpy(parts, x, y), 1 if naive and n > 1_000 else REPEATS)
    log.info(
        "%s: jax %.4f s (on device %.4f s), sklearn %.4f s, numpy %.4f s",
        group,
        jax_s,
        device_s,
        sk_s,
        np_s,
    )
    common = {"benchmark": "linalg", "group": group, "events": n}
    rows = [
        Row(
            **common,
            system="feature-store (JAX)",
            variant=f"jitted, warm; {device_note}; first call {first:.2f} s with compilation",
            wall_s=jax_s,
            check=_check(got, want) + ("" if math.isnan(device_s) else " (on device too)"),
        ),
        Row(
            **common,
            system="scikit-learn",
            variant=f"float32 input{_solver(n) if 'pca' in parts else ''}",
            wall_s=sk_s,
            reference=True,
        ),
        Row(
            **common,
            system="numpy",
            variant="SVD; broadcast distances" if naive else "SVD / normalised matmul",
            wall_s=np_s,
        ),
    ]
    return rows, device_s


def _solver(n: int) -> str:
    """The PCA solver scikit-learn picks for n x 384 rows to 32 components."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=DIM).fit(np.random.default_rng(0).normal(size=(n, WIDTH)))
    return f"; PCA solver {pca._fit_svd_solver}"


LATENT = 64  # directions holding the rows' variance


def _rows(rng: np.random.Generator, basis: np.ndarray, n: int) -> np.ndarray:
    """Rows shaped like sentence embeddings: their variance falls off over a few dozen
    directions (a component's variance 0.81 times the one before), plus a little isotropic
    noise. The leading components are then well defined: isotropic random rows have no
    principal directions, and PCAs of them agree on nothing but the timing."""
    scales = 0.9 ** np.arange(LATENT)
    latent = rng.normal(size=(n, LATENT)) * scales
    return (latent @ basis + 0.05 * rng.normal(size=(n, WIDTH))).astype(np.float32)


def measure(sizes: tuple[int, ...], seed: int) -> tuple[list[Row], list[str]]:
    """Every group at every size: the rows and the markdown table's lines."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(WIDTH, LATENT)))[0].T  # orthonormal rows
    y = _rows(rng, basis, OTHERS)
    rows: list[Row] = []
    table = [
        "| N x 384 vs 500 | work | JAX ms | on device ms | scikit-learn ms | numpy ms "
        "| sklearn / JAX | sklearn / on device |"
    ]
    table.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        x = _rows(rng, basis, n)
        for name, parts in GROUPS.items():
            (jax_row, sk_row, np_row), device_s = _group(n, name, parts, (x, y))
            rows += [jax_row, sk_row, np_row]
            ms = [1e3 * (r.wall_s or 0.0) for r in (jax_row, sk_row, np_row)]
            on_device = 1e3 * device_s
            device_cells = (
                ("—", "—")
                if math.isnan(on_device)
                else (f"{on_device:.1f}", f"{ms[1] / on_device:.1f}×")
            )
            table.append(
                f"| {n:,} | {name} | {ms[0]:.1f} | {device_cells[0]} | {ms[1]:.1f} | {ms[2]:.1f} "
                f"| {ms[1] / ms[0]:.1f}× | {device_cells[1]} |"
            )
    return rows, table


def versions() -> str:
    from importlib import metadata

    return ", ".join(f"{p} {metadata.version(p)}" for p in ("jax", "scikit-learn", "numpy"))


GOAL = 10.0  # scikit-learn's time over JAX's for PCA + distances, on CPU


def _goal(ctx: Context, rows: list[Row]) -> None:
    """The 10x goal for the stage's whole work, at every size this run measured."""
    ratios = []
    for ref in rows:
        if ref.reference and ref.group.startswith("PCA + distances:") and ref.wall_s:
            ours = next(r for r in rows if r.group == ref.group and r.system.endswith("(JAX)"))
            ratios.append((ref.events, ref.wall_s / (ours.wall_s or float("inf"))))
    ctx.goal(
        f"JAX at least {GOAL:.0f}x scikit-learn on CPU for PCA + distances "
        f"(N x {WIDTH} against {OTHERS})",
        ", ".join(f"{ratio:.1f}x at {n:,} rows" for n, ratio in ratios),
        met=bool(ratios) and all(ratio >= GOAL for _, ratio in ratios),
    )


def _floor(n: int, seed: int) -> str:
    """One matrix product of the distances' size in numpy's BLAS and in XLA: the floor
    both libraries share, which bounds how far apart their PCA + distances can be."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, WIDTH)).astype(np.float32)
    y = rng.normal(size=(OTHERS, WIDTH)).astype(np.float32)
    product = jax.jit(lambda a, b: a @ b.T)
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    product(xd, yd).block_until_ready()
    blas_ms = 1e3 * _median_s(lambda: x @ y.T, 5)
    xla_ms = 1e3 * _median_s(lambda: product(xd, yd).block_until_ready(), 5)
    gram_ms = 1e3 * _median_s(lambda: x.T @ x, 5)
    return (
        f"The floor, measured in this run: one {n:,} x {WIDTH} by {WIDTH} x {OTHERS} matrix "
        f"product (the distances' work) takes {blas_ms:.1f} ms in numpy's BLAS and "
        f"{xla_ms:.1f} ms in XLA, and the {WIDTH} x {WIDTH} Gram matrix of a PCA fit "
        f"{gram_ms:.1f} ms in BLAS. From 4,000 rows scikit-learn's own PCA solver "
        "(`covariance_eigh`) does the same work as the kernel (the centred Gram matrix and "
        f"a {WIDTH} x {WIDTH} symmetric eigendecomposition in LAPACK), so on a CPU two "
        "libraries calling the same kind of kernels differ by what JAX fuses (one product "
        "for the three distances against scikit-learn's three, no float64 detour for the "
        "RBF kernel, the fit and projection in one call), not tenfold."
    )


def run(ctx: Context) -> list[Row]:
    sizes = (ctx.events,) if ctx.events else SIZES[1] if ctx.quick else SIZES[0]
    rows, table = measure(sizes, ctx.seed)
    _goal(ctx, rows)
    ctx.section(
        "JAX kernels in milliseconds",
        f"{versions()}.\n\n" + "\n".join(table) + "\n\n" + _floor(max(sizes), ctx.seed),
    )
    recorded = gpu_record.RESULTS / "linalg.md"
    if recorded.exists():
        text = recorded.read_text(encoding="utf-8")
        cold = (
            " That run's feature-stage line was taken before the share figure had a warm "
            "pass, so its kernel time includes compiling the shapes of the batches after "
            "the first."
            if "first pass" not in text
            else ""
        )
        ctx.section(
            "On a GPU",
            "The same table from the last GPU run (`bench/gpu_run.sh`, recorded in "
            "`bench/gpu_results/linalg.md`; the CPU systems on that machine's cores). "
            f"{gpu_record.provenance()}{cold} "
            'There the two JAX columns part: "JAX ms" carries the copies over the bus '
            '(their rates are measured at the end), "on device ms" is the kernels\' own '
            "time. The pairwise rows copy back N x 500 float32 matrices (three for "
            "PCA + distances), the table's work; the jobs' kernels return far less: two "
            "numbers per newest review and offset, and N x 32 projections.\n\n" + text,
        )
    on_cpu = recorded.with_name("linalg_cpu.md")
    if on_cpu.exists():
        ctx.section(
            "On that machine's CPU",
            "The same table with JAX on the GPU machine's 16 CPU threads "
            "(`JAX_PLATFORMS=cpu`, same run, recorded in `bench/gpu_results/linalg_cpu.md`):"
            "\n\n" + on_cpu.read_text(encoding="utf-8"),
        )
    rows += _features_share(ctx.size(20_000, 4_000), ctx.seed)
    return rows


def _review_records(n: int, seed: int) -> list[dict[str, Any]]:
    """n review_created events of n / 10 users over 30 days, with 384-d embeddings."""
    rng = np.random.default_rng(seed)
    users = max(1, n // 10)
    times = rng.integers(0, 30 * 86_400_000_000, size=n)
    vecs = rng.normal(size=(n, WIDTH)).astype(np.float32)
    return [
        {
            "event_id": f"e{i:07d}",
            "event_type": "review_created",
            "event_time": int(times[i]),
            "user_id": f"u{int(rng.integers(users)):05d}",
            "business_id": f"b{i % 200:03d}",
            "device_id": f"d{i % 997:03d}",
            "rating": int(rng.integers(1, 6)),
            "sentiment": float(rng.uniform(-1, 1)),
            "embedding_semantic": vecs[i],
        }
        for i in range(n)
    ]


def features_share_line(n: int, seed: int) -> str:
    """`_features_share` as one sentence, for the GPU script's record."""
    timed = _share_times(n, seed)
    return (
        f"The feature stage on {n:,} reviews of {n // 10:,} users over 30 days "
        "(`make bench`'s share figure, the kernels on JAX's device): "
        f"user_review_stats {timed['user_review_stats']:.2f} s; user_content_stats's change "
        f"points {timed['user_content_stats']:.2f} s and its VectorFeatures kernels "
        f"{timed['kernels']:.2f} s warm ({timed['first']:.2f} s the first pass, with "
        f"compilations), {_content_share(timed):.0%} of the three."
    )


def _content_share(timed: dict[str, float]) -> float:
    """`user_content_stats`' two steps (change points, warm kernels) over the three."""
    content = timed["user_content_stats"] + timed["kernels"]
    return content / (timed["user_review_stats"] + content)


def _share_times(n: int, seed: int) -> dict[str, float]:
    """Seconds of each view's change points on the same review events, as
    `ComputeChangePoints` runs them, and of the kernel stage over `user_content_stats`'
    rows in batches of 256 users, as `VectorFeatures` gets them: a first pass (which
    compiles every shape the batches need) and a second, warm one."""
    from feature_store.core.change_rows import KeyedEvents, compute_rows_many
    from feature_store.core.plan import ViewPlan
    from feature_store.core.vector_rows import resolve
    from feature_store.reference import REGISTRY

    records = _review_records(n, seed)
    timed: dict[str, float] = {}
    for view in ("user_review_stats", "user_content_stats"):
        plan = ViewPlan.build(REGISTRY, view)
        keyed = KeyedEvents.from_records([(r["user_id"], r) for r in records], plan.fields)
        began = time.perf_counter()
        batches = compute_rows_many(plan, keyed, defer_vectors=True)
        timed[view] = time.perf_counter() - began

    def kernels() -> float:
        began = time.perf_counter()
        for at in range(0, len(batches), 256):
            resolve(batches[at : at + 256])
        return time.perf_counter() - began

    timed["first"] = kernels()
    timed["kernels"] = kernels()
    log.info("features share at %d events: %s", n, timed)
    return timed


def _features_share(n: int, seed: int) -> list[Row]:
    """The vector features' cost in the batch feature stage: `user_content_stats`
    (exact change points, then the kernel stage) against `user_review_stats` (eight
    counting features) on the same review events (`_share_times`)."""
    timed = _share_times(n, seed)
    group = f"feature stage share: {n:,} reviews, {n // 10:,} users, 30 days"
    common = {"benchmark": "linalg", "group": group, "events": n}
    return [
        Row(
            **common,
            system="user_review_stats",
            variant="8 counting features",
            wall_s=timed["user_review_stats"],
            reference=True,
        ),
        Row(
            **common,
            system="user_content_stats",
            variant="change points (signatures)",
            wall_s=timed["user_content_stats"],
        ),
        Row(
            **common,
            system="VectorFeatures",
            variant=(
                f"JAX kernels, warm (first pass {timed['first']:.2f} s, with compilations); "
                f"user_content_stats (both steps) {_content_share(timed):.0%} of the three"
            ),
            wall_s=timed["kernels"],
        ),
    ]
