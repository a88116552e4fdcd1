"""JAX kernels for linear algebra on embedding matrices, jitted once per process.

The kernels are pure `jax.numpy` functions: pairwise cosine similarity, Euclidean
distance and RBF kernel (each alone, or all three from one matrix product: `pairwise`),
PCA (fit by eigendecomposition of the covariance, then transform; up to `ROW_CAP` rows
`pca_fit_transform` fits and projects in one compiled call), and the two
per-change-point features of a user's newest review (`newest_vector_stats`). They are
wrapped by `jax.jit` once, at import, in this module: a Beam worker that imports the
module in `setup` (which the local runner calls per bundle) reuses the same compiled
functions. The public functions take and return numpy arrays (padding, chunking and the
copies to and from the device included); the pure kernels they call (`cosine_kernel`,
`euclidean_kernel`, `rbf_kernel`, `pairwise_kernel`, `pca_kernel`) take and return
device arrays of bucketed shapes.

Shapes are bucketed so that a stream of matrices of varied sizes compiles a handful of
times: row counts are padded to a power of two (at least `MIN_ROWS`) with masks or
zero rows that do not reach the results, and inputs past a cap are cut into chunks of
the cap. One input has no cap: the vectors the newest-review kernel gathers its rows
from go to the device once per `stats_at` call, padded to a power of two (at least
`VECTOR_MIN_ROWS`), so each power of two of a batch's rows is one more shape.
`traces()` counts how often each kernel was traced (= compiled) in this process.

Numbers: float32 on the device, matrix products at full float32 precision
(`Precision.HIGHEST`, which keeps GPUs off TF32). Against a float64 numpy computation the
results agree within about 1e-5 for cosine similarities and 1e-5 times the scale of the
vectors for distances (see the tests for the stated tolerances).

Memory: JAX reserves 75% of a GPU's memory at its first use unless told otherwise. This
module sets `XLA_PYTHON_CLIENT_PREALLOCATE=false` (unless already set) before it imports
jax, so a worker running torch models and JAX kernels on one GPU shares it. The setting
only takes effect if nothing imported jax earlier in the process: workers import this
module first, or the worker image sets the variable.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jax import lax

from feature_store.core.aggregation import newest_and_first
from feature_store.errors import FeatureDefinitionError

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MIN_ROWS = 8
ROW_CAP = 16_384  # rows of one matrix per compiled call of the pairwise and PCA kernels
BAND_ROWS = 16_384  # (events x window rows) per call of the newest-review kernel
# rows of the vectors the newest-review kernel gathers from: a power of two, at least this
VECTOR_MIN_ROWS = 1_024
HIGHEST = lax.Precision.HIGHEST

_TRACES: Counter[str] = Counter()


def traces() -> dict[str, int]:
    """How many times each kernel was traced (each trace is one compilation)."""
    return dict(_TRACES)


def bucket(n: int, cap: int = ROW_CAP) -> int:
    """The padded size of `n` rows: the next power of two, at least MIN_ROWS, at most cap."""
    if n <= 0:
        msg = f"a bucket needs a positive row count, got {n}"
        raise ValueError(msg)
    return min(cap, max(MIN_ROWS, 1 << (n - 1).bit_length()))


def _chunks(n: int, cap: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, cap):
        yield start, min(n, start + cap)


def _pad_rows(x: npt.NDArray[Any], rows: int) -> npt.NDArray[Any]:
    if x.shape[0] == rows:
        return x
    pad = np.zeros((rows - x.shape[0], *x.shape[1:]), dtype=x.dtype)
    return np.concatenate([x, pad])


def _matrix(name: str, x: npt.ArrayLike) -> Float32Array:
    out = np.asarray(x, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] == 0 or out.shape[1] == 0:
        msg = f"`{name}` must be a non-empty 2-D matrix, got shape {out.shape}"
        raise ValueError(msg)
    return out


# ------------------------------------------------------------------ pure kernels


def _sq_norms(x: jax.Array) -> jax.Array:
    return jnp.sum(x * x, axis=-1)


def _unit(x: jax.Array) -> jax.Array:
    """Rows scaled to unit length; zero rows stay zero (their similarity is 0)."""
    norms = jnp.sqrt(_sq_norms(x))[..., None]
    return jnp.where(norms > 0, x / jnp.where(norms > 0, norms, 1.0), 0.0)


def _sq_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    cross = jnp.matmul(x, y.T, precision=HIGHEST)
    return jnp.maximum(_sq_norms(x)[:, None] - 2.0 * cross + _sq_norms(y)[None, :], 0.0)


def cosine_kernel(x: jax.Array, y: jax.Array) -> jax.Array:
    _TRACES["cosine"] += 1
    return jnp.matmul(_unit(x), _unit(y).T, precision=HIGHEST)


def euclidean_kernel(x: jax.Array, y: jax.Array) -> jax.Array:
    _TRACES["euclidean"] += 1
    return jnp.sqrt(_sq_distances(x, y))


def rbf_kernel(x: jax.Array, y: jax.Array, gamma: jax.Array) -> jax.Array:
    _TRACES["rbf"] += 1
    return jnp.exp(-gamma * _sq_distances(x, y))


def pairwise_kernel(
    x: jax.Array, y: jax.Array, gamma: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Cosine similarity, Euclidean distance and RBF kernel of every pair, from one
    matrix product and the rows' norms (the three separately take three products)."""
    _TRACES["pairwise"] += 1
    cross = jnp.matmul(x, y.T, precision=HIGHEST)
    nx, ny = _sq_norms(x)[:, None], _sq_norms(y)[None, :]
    sq = jnp.maximum(nx - 2.0 * cross + ny, 0.0)
    lengths = jnp.sqrt(nx) * jnp.sqrt(ny)
    cosine = jnp.where(lengths > 0, cross / jnp.where(lengths > 0, lengths, 1.0), 0.0)
    return cosine, jnp.sqrt(sq), jnp.exp(-gamma * sq)


def _masked_sum_kernel(x: jax.Array, mask: jax.Array) -> jax.Array:
    _TRACES["pca_sum"] += 1
    return jnp.sum(jnp.where(mask[:, None], x, 0.0), axis=0)


def _centered_gram_kernel(x: jax.Array, mask: jax.Array, mean: jax.Array) -> jax.Array:
    _TRACES["pca_gram"] += 1
    centered = jnp.where(mask[:, None], x - mean, 0.0)
    return jnp.matmul(centered.T, centered, precision=HIGHEST)


def _eigh_kernel(cov: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Eigenvalues descending and eigenvectors as rows, each signed so that its largest
    absolute entry is positive (a deterministic sign, as scikit-learn's svd_flip)."""
    _TRACES["pca_eigh"] += 1
    values, vectors = jnp.linalg.eigh(cov, symmetrize_input=True)
    values, rows = values[::-1], vectors[:, ::-1].T
    pivot = jnp.take_along_axis(rows, jnp.argmax(jnp.abs(rows), axis=1)[:, None], axis=1)
    return values, rows * jnp.where(pivot < 0, -1.0, 1.0)


def pca_kernel(
    x: jax.Array, mask: jax.Array, dim: int
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """PCA of the masked rows of one chunk, fitted and applied in one compiled call:
    the mean, the centred Gram matrix, its eigendecomposition and the projection, with
    no trip to the host between them. Returns mean, components, variances, projection."""
    _TRACES["pca_one"] += 1
    n = jnp.sum(mask.astype(jnp.float32))
    mean = jnp.sum(jnp.where(mask[:, None], x, 0.0), axis=0) / n
    centered = jnp.where(mask[:, None], x - mean, 0.0)
    cov = jnp.matmul(centered.T, centered, precision=HIGHEST) / (n - 1.0)
    values, rows = _eigh_kernel(cov)
    components = rows[:dim]
    return mean, components, values[:dim], jnp.matmul(centered, components.T, precision=HIGHEST)


def _project_kernel(x: jax.Array, mean: jax.Array, components: jax.Array) -> jax.Array:
    _TRACES["pca_transform"] += 1
    return jnp.matmul(x - mean, components.T, precision=HIGHEST)


def _newest_band_kernel(
    vectors: jax.Array,
    newest: jax.Array,
    index: jax.Array,
    others: jax.Array,
    members: jax.Array,
    carry_sum: jax.Array,
    carry_count: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """For C newest vectors (`vectors[newest]`) and the B rows before each, newest first
    (`vectors[index]`, C x B): at every offset b, the highest cosine similarity to the
    `others` rows among offsets <= b (-inf if none), and the distance of the newest from
    the centroid of the `members` rows among offsets <= b. `carry_*` continue the sums
    of an earlier chunk of offsets. The rows are gathered here, on the device, from the
    one copy of `vectors` sent there per call of `stats_at`."""
    _TRACES["newest_band"] += 1
    query = vectors[newest]
    rows = jnp.where(members[..., None], vectors[index], 0.0)
    sims = jnp.einsum("cd,cbd->cb", _unit(query), _unit(rows), precision=HIGHEST)
    best = lax.cummax(jnp.where(others, sims, -jnp.inf), axis=1)
    diffs = jnp.where(members[..., None], rows - query[:, None, :], 0.0)
    sums = carry_sum[:, None, :] + jnp.cumsum(diffs, axis=1)
    counts = carry_count[:, None] + jnp.cumsum(members.astype(jnp.float32), axis=1)
    distance = jnp.sqrt(_sq_norms(sums)) / jnp.maximum(counts, 1.0)
    return best, distance, sums[:, -1, :], counts[:, -1]


_cosine = jax.jit(cosine_kernel)
_euclidean = jax.jit(euclidean_kernel)
_rbf = jax.jit(rbf_kernel)
_pairwise_all = jax.jit(pairwise_kernel)
_pca_one = jax.jit(pca_kernel, static_argnames="dim")
_masked_sum = jax.jit(_masked_sum_kernel)
_centered_gram = jax.jit(_centered_gram_kernel)
_eigh = jax.jit(_eigh_kernel)
_project = jax.jit(_project_kernel)
_newest_band = jax.jit(_newest_band_kernel)


# ------------------------------------------------------------------ pairwise


def _pairwise_many(
    kernel: Callable[..., Any], outputs: int, x: npt.ArrayLike, y: npt.ArrayLike, *extra: Any
) -> list[Float32Array]:
    """A kernel returning `outputs` (x rows, y rows) matrices, over padded chunks."""
    xs, ys = _matrix("x", x), _matrix("y", y)
    if xs.shape[1] != ys.shape[1]:
        msg = f"x and y need the same width, got {xs.shape[1]} and {ys.shape[1]}"
        raise ValueError(msg)
    outs = [np.empty((xs.shape[0], ys.shape[0]), dtype=np.float32) for _ in range(outputs)]
    for y0, y1 in _chunks(ys.shape[0], ROW_CAP):
        y_dev = jnp.asarray(_pad_rows(ys[y0:y1], bucket(y1 - y0)))
        for x0, x1 in _chunks(xs.shape[0], ROW_CAP):
            x_dev = jnp.asarray(_pad_rows(xs[x0:x1], bucket(x1 - x0)))
            found = kernel(x_dev, y_dev, *extra)
            for out, part in zip(outs, found if outputs > 1 else (found,), strict=True):
                out[x0:x1, y0:y1] = np.asarray(part)[: x1 - x0, : y1 - y0]
    return outs


def _pairwise(
    kernel: Callable[..., jax.Array], x: npt.ArrayLike, y: npt.ArrayLike, *extra: Any
) -> Float32Array:
    return _pairwise_many(kernel, 1, x, y, *extra)[0]


def cosine_similarity(x: npt.ArrayLike, y: npt.ArrayLike) -> Float32Array:
    """Cosine similarity of every row of x to every row of y (a zero row gives 0)."""
    return _pairwise(_cosine, x, y)


def euclidean_distances(x: npt.ArrayLike, y: npt.ArrayLike) -> Float32Array:
    """Euclidean distance of every row of x to every row of y."""
    return _pairwise(_euclidean, x, y)


def rbf(x: npt.ArrayLike, y: npt.ArrayLike, gamma: float | None = None) -> Float32Array:
    """exp(-gamma * |x - y|^2) for every pair; gamma defaults to 1 / width (scikit-learn's)."""
    width = np.shape(x)[-1]
    g = 1.0 / width if gamma is None else gamma
    return _pairwise(_rbf, x, y, jnp.float32(g))


@dataclass(frozen=True, kw_only=True)
class Pairwise:
    """The three pairwise measures of the rows of x against the rows of y."""

    cosine: Float32Array
    euclidean: Float32Array
    rbf: Float32Array


def pairwise(x: npt.ArrayLike, y: npt.ArrayLike, gamma: float | None = None) -> Pairwise:
    """Cosine similarity, Euclidean distance and RBF kernel (gamma defaulting to
    1 / width) of every pair in one compiled call per chunk: one matrix product serves
    all three, where calling the three functions runs three."""
    width = np.shape(x)[-1]
    g = 1.0 / width if gamma is None else gamma
    cosine, euclidean, kernel = _pairwise_many(_pairwise_all, 3, x, y, jnp.float32(g))
    return Pairwise(cosine=cosine, euclidean=euclidean, rbf=kernel)


# ------------------------------------------------------------------ PCA


@dataclass(frozen=True, kw_only=True)
class PCAFit:
    """A fitted PCA: `transform(x) = (x - mean) @ components.T`."""

    mean: Float32Array  # (width,)
    components: Float32Array  # (dim, width), rows orthonormal, largest variance first
    explained_variance: Float32Array  # (dim,)
    rows: int  # how many rows it was fitted on


def _masked_chunks(xs: Float32Array) -> Iterator[tuple[jax.Array, jax.Array]]:
    for start, stop in _chunks(xs.shape[0], ROW_CAP):
        size = bucket(stop - start)
        mask = np.zeros(size, dtype=bool)
        mask[: stop - start] = True
        yield jnp.asarray(_pad_rows(xs[start:stop], size)), jnp.asarray(mask)


def _check_pca(n: int, width: int, dim: int) -> None:
    if not 0 < dim <= width or n < 2:
        msg = f"PCA to {dim} dims needs 0 < dim <= {width} and at least 2 rows, got {n}"
        raise ValueError(msg)


def pca_fit(x: npt.ArrayLike, dim: int) -> PCAFit:
    """PCA of the rows of x to `dim` components, by eigendecomposition of the covariance
    (width x width), accumulated over row chunks: two passes, mean then centred Gram."""
    xs = _matrix("x", x)
    n, width = xs.shape
    _check_pca(n, width, dim)
    total = np.zeros(width, dtype=np.float64)
    for chunk, mask in _masked_chunks(xs):
        total += np.asarray(_masked_sum(chunk, mask), dtype=np.float64)
    mean = jnp.asarray((total / n).astype(np.float32))
    gram = np.zeros((width, width), dtype=np.float64)
    for chunk, mask in _masked_chunks(xs):
        gram += np.asarray(_centered_gram(chunk, mask, mean), dtype=np.float64)
    values, rows = _eigh(jnp.asarray((gram / (n - 1)).astype(np.float32)))
    return PCAFit(
        mean=np.asarray(mean),
        components=np.asarray(rows[:dim]),
        explained_variance=np.asarray(values[:dim]),
        rows=n,
    )


def pca_fit_transform(x: npt.ArrayLike, dim: int) -> tuple[PCAFit, Float32Array]:
    """`pca_fit(x, dim)` and the rows of x projected by it. Up to `ROW_CAP` rows this is
    one compiled call (fitted and projected without leaving the device); past it, the
    chunked fit then the chunked transform."""
    xs = _matrix("x", x)
    n, width = xs.shape
    if n > ROW_CAP:
        fit = pca_fit(xs, dim)
        return fit, pca_transform(fit, xs)
    _check_pca(n, width, dim)
    chunk, mask = next(_masked_chunks(xs))
    mean, components, variances, projected = _pca_one(chunk, mask, dim=dim)
    fit = PCAFit(
        mean=np.asarray(mean),
        components=np.asarray(components),
        explained_variance=np.asarray(variances),
        rows=n,
    )
    return fit, np.asarray(projected)[:n]


def pca_transform(fit: PCAFit, x: npt.ArrayLike) -> Float32Array:
    """The rows of x in the fitted components' coordinates."""
    xs = _matrix("x", x)
    if xs.shape[1] != fit.mean.shape[0]:
        msg = f"PCA fitted on width {fit.mean.shape[0]} cannot transform width {xs.shape[1]}"
        raise ValueError(msg)
    mean, components = jnp.asarray(fit.mean), jnp.asarray(fit.components)
    out = np.empty((xs.shape[0], fit.components.shape[0]), dtype=np.float32)
    for (start, stop), (chunk, _) in zip(
        _chunks(xs.shape[0], ROW_CAP), _masked_chunks(xs), strict=True
    ):
        out[start:stop] = np.asarray(_project(chunk, mean, components))[: stop - start]
    return out


# ------------------------------------------------------------------ newest-review features


@dataclass(frozen=True, kw_only=True)
class NewestStats:
    """Per point: the newest vector's highest cosine similarity to the window's other
    vectors (NaN with fewer than 2) and its distance from the window's centroid, newest
    included (NaN with none)."""

    similarity: FloatArray
    centroid_distance: FloatArray


@dataclass(frozen=True)
class _Bands:
    """For each distinct newest row `k` and offset o < need[k]: the best similarity to
    the rows k-1 .. k-o and the centroid distance of rows k .. k-o, flat at start[k] + o."""

    start: IntArray
    best: FloatArray
    distance: FloatArray


def _bands(vectors: Float32Array, valid: BoolArray, ks: IntArray, need: IntArray) -> _Bands:
    """The band tables of the distinct newest rows `ks`, in few compiled calls: rows
    grouped by the offsets they need (longest first), each group padded to buckets. The
    vectors go to the device once (rows padded to a power of two, `VECTOR_MIN_ROWS` at
    least, so small batches share one shape); each call sends only row numbers and masks."""
    start = np.concatenate([[0], np.cumsum(need)]).astype(np.int64)
    best = np.full(int(start[-1]), -np.inf)
    distance = np.full(int(start[-1]), np.nan)
    if ks.shape[0] == 0:
        return _Bands(start=start, best=best, distance=distance)
    if vectors.shape[0] >= 2**31:
        msg = f"the kernel indexes rows in int32: {vectors.shape[0]:,} rows are too many"
        raise ValueError(msg)
    rows = max(VECTOR_MIN_ROWS, bucket(vectors.shape[0], cap=2**31))
    on_device = jnp.asarray(_pad_rows(vectors, rows))
    order = np.argsort(-need, kind="stable")
    at = 0
    while at < order.shape[0]:
        width = bucket(int(need[order[at]]), cap=BAND_ROWS // MIN_ROWS)
        group = order[at : at + BAND_ROWS // width]
        at += group.shape[0]
        _band_group(on_device, valid, ks[group], need[group], start[group], width, best, distance)
    return _Bands(start=start, best=best, distance=distance)


def _band_group(
    vectors: jax.Array,
    valid: BoolArray,
    ks: IntArray,
    need: IntArray,
    start: IntArray,
    width: int,
    best: FloatArray,
    distance: FloatArray,
) -> None:
    size = bucket(ks.shape[0], cap=BAND_ROWS // width)
    newest = jnp.asarray(_pad_rows(ks.astype(np.int32), size))
    carry_sum = jnp.zeros((size, vectors.shape[1]), dtype=jnp.float32)
    carry_count = jnp.zeros(size, dtype=jnp.float32)
    running = np.full(ks.shape[0], -np.inf)
    for first in range(0, int(need.max()), width):
        offsets = np.arange(first, first + width, dtype=np.int64)
        wanted = offsets[None, :] < need[:, None]
        index = np.maximum(ks[:, None] - offsets[None, :], 0)
        members = wanted & valid[index]
        out = _newest_band(
            vectors,
            newest,
            jnp.asarray(_pad_rows(index.astype(np.int32), size)),
            jnp.asarray(_pad_rows(members & (offsets[None, :] > 0), size)),
            jnp.asarray(_pad_rows(members, size)),
            carry_sum,
            carry_count,
        )
        carry_sum, carry_count = out[2], out[3]
        chunk_best = np.maximum(np.asarray(out[0])[: ks.shape[0]], running[:, None])
        running = chunk_best[:, -1]
        flat = (start[:, None] + offsets[None, :])[wanted]
        best[flat] = chunk_best[wanted]
        distance[flat] = np.asarray(out[1])[: ks.shape[0]][wanted]


def _read(bands: _Bands, slot: IntArray, newest: IntArray, first: IntArray) -> NewestStats:
    has = newest >= 0
    at = bands.start[slot] + (newest - first)
    similarity = np.full(newest.shape[0], np.nan)
    centroid = np.full(newest.shape[0], np.nan)
    found = bands.best[at[has]]
    similarity[has] = np.where(np.isinf(found), np.nan, found)
    centroid[has] = bands.distance[at[has]]
    return NewestStats(similarity=similarity, centroid_distance=centroid)


def _newest_stats_many(
    vectors: npt.ArrayLike, valid: BoolArray, hi: IntArray, los: list[IntArray]
) -> list[NewestStats]:
    """`newest_vector_stats` for several windows ending at the same points, sharing one
    set of kernel calls (the newest row of a window does not depend on its start)."""
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim != 2:
        msg = f"vectors must be a 2-D matrix, got shape {vecs.shape}"
        raise ValueError(msg)
    valid = np.asarray(valid, dtype=bool) & ~np.isnan(vecs).any(axis=1)
    found = [newest_and_first(valid, np.asarray(lo, np.int64), hi) for lo in los]
    newest = np.concatenate([k for k, _ in found])
    span = np.concatenate([k - f + 1 for k, f in found])
    has = newest >= 0
    ks, slot = np.unique(newest[has], return_inverse=True)
    need = np.zeros(ks.shape[0], dtype=np.int64)
    np.maximum.at(need, slot, span[has])
    bands = _bands(vecs, valid, ks.astype(np.int64), need)
    slots = np.zeros(newest.shape[0], dtype=np.int64)
    slots[has] = slot
    out, at = [], 0
    for k, f in found:
        part = slice(at, at + k.shape[0])
        out.append(_read(bands, slots[part], k, f))
        at += k.shape[0]
    return out


def stats_at(
    vectors: npt.ArrayLike, valid: npt.ArrayLike, newest: npt.ArrayLike, first: npt.ArrayLike
) -> NewestStats:
    """Both features for windows given by their (newest, first) valid rows (-1: empty), as
    `aggregation.newest_window_signature` gives them: the kernel stage's entry point.
    Rows of many entities may be stacked in `vectors`: a window never reaches before
    its `first` row."""
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim != 2:
        msg = f"vectors must be a 2-D matrix, got shape {vecs.shape}"
        raise ValueError(msg)
    ok = np.asarray(valid, dtype=bool) & ~np.isnan(vecs).any(axis=1)
    k = np.asarray(newest, dtype=np.int64)
    f = np.asarray(first, dtype=np.int64)
    has = k >= 0
    if k.shape != f.shape or (has & ((f < 0) | (f > k) | (k >= vecs.shape[0]))).any():
        msg = f"(newest, first) pairs must satisfy 0 <= first <= newest < {vecs.shape[0]}"
        raise ValueError(msg)
    ks, slot = np.unique(k[has], return_inverse=True)
    need = np.zeros(ks.shape[0], dtype=np.int64)
    np.maximum.at(need, slot, (k - f + 1)[has])
    bands = _bands(vecs, ok, ks.astype(np.int64), need)
    slots = np.zeros(k.shape[0], dtype=np.int64)
    slots[has] = slot
    return _read(bands, slots, k, f)


def newest_vector_stats(
    vectors: npt.ArrayLike, valid: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike
) -> NewestStats:
    """Both features of the newest vector of each window of sorted rows.

    Window j holds the `valid` rows (NaN rows never are) with index in [lo[j], hi[j]);
    its newest is the last of them. The kernel runs once per distinct newest row over the
    rows before it, so points whose windows hold the same rows read the same numbers.
    """
    hi_arr = np.asarray(hi, dtype=np.int64)
    return _newest_stats_many(vectors, np.asarray(valid, bool), hi_arr, [np.asarray(lo)])[0]


def vector_features(
    times: npt.ArrayLike,
    event_ids: npt.ArrayLike,
    vectors: npt.ArrayLike,
    points: npt.ArrayLike,
    *,
    similarity_window: int | None,
    centroid_window: int | None,
) -> NewestStats:
    """One entity's `max_similarity_to_newest` and `centroid_distance_of_newest` at every
    point t (µs), each over the events with `t - window < event_time <= t` (all events up
    to t for a window of None), ties ordered by event_id, in one set of kernel calls."""
    t = np.asarray(times, dtype=np.int64)
    ids = np.asarray(event_ids, dtype=object)
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim != 2 or not t.shape[0] == ids.shape[0] == vecs.shape[0]:
        msg = (
            "times, ids and a vector matrix of one length needed, "
            f"got {t.shape}, {ids.shape}, {vecs.shape}"
        )
        raise ValueError(msg)
    order = np.lexsort((ids.astype(str), t))
    t, vecs = t[order], vecs[order]
    at = np.asarray(points, dtype=np.int64)
    for name, window in (("similarity", similarity_window), ("centroid", centroid_window)):
        if window is not None and window <= 0:
            msg = f"{name} window must be positive, got {window}"
            raise FeatureDefinitionError(msg)
    hi = np.searchsorted(t, at, side="right").astype(np.int64)
    los = [
        np.zeros_like(hi) if w is None else np.searchsorted(t, at - w, side="right")
        for w in (similarity_window, centroid_window)
    ]
    valid = np.ones(t.shape[0], dtype=bool)
    sim, cent = _newest_stats_many(vecs, valid, hi, los)
    return NewestStats(similarity=sim.similarity, centroid_distance=cent.centroid_distance)
