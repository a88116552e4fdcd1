"""The kernel stage's computation: pending vector features of many `RowBatch`es at once.

`resolve` stacks the vector rows of every batch handed to it (per field and condition),
evaluates every row's window and the window 1 µs before it in one set of JAX kernel calls
(`linalg.stats_at`), fills the columns, and keeps a row where a scalar value required it
or a vector value changed: the rows the definition gives (see `pending`). Batches
without pending features pass through unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from feature_store.core import linalg
from feature_store.core.columns import FloatArray, IntArray
from feature_store.core.windows import RowBatch, differs
from feature_store.errors import FeatureDefinitionError

# which of `linalg.NewestStats` each vector kind reads
STAT_OF_KIND = {
    "max_similarity_to_newest": "similarity",
    "centroid_distance_of_newest": "centroid_distance",
}


def _stat(kind: str, stats: linalg.NewestStats) -> FloatArray:
    name = STAT_OF_KIND.get(kind)
    if name is None:
        msg = f"no kernel evaluates the deferred aggregation kind {kind!r}"
        raise FeatureDefinitionError(msg)
    column: FloatArray = getattr(stats, name)
    return column


def resolve(batches: Sequence[RowBatch]) -> list[RowBatch]:
    """Every batch with its vector features evaluated and unchanged rows dropped (a
    batch left with no row is dropped), in the order given."""
    # per group key: stacked parts, and the queries (batch, feature, when) into them
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    offsets: dict[tuple[int, str], int] = {}
    rows_so_far: dict[str, int] = defaultdict(int)
    for i, batch in enumerate(batches):
        if batch.pending is None:
            continue
        for key, group in batch.pending.groups.items():
            offsets[(i, key)] = rows_so_far[key]
            rows_so_far[key] += group.vectors.shape[0]
            parts[key].append((group.vectors, group.valid))
    queries: dict[str, list[tuple[int, str, str, IntArray]]] = defaultdict(list)
    for i, batch in enumerate(batches):
        if batch.pending is None:
            continue
        for name, key in batch.pending.group_of.items():
            for when, sig in (
                ("now", batch.pending.now[name]),
                ("before", batch.pending.before[name]),
            ):
                shifted = np.where(sig >= 0, sig + offsets[(i, key)], -1)
                queries[key].append((i, name, when, shifted))
    results: dict[tuple[int, str, str], FloatArray] = {}
    for key, asked in queries.items():
        vectors = np.concatenate([v for v, _ in parts[key]])
        valid = np.concatenate([m for _, m in parts[key]])
        sigs = np.concatenate([s for *_, s in asked]) if asked else np.zeros((0, 2), np.int64)
        stats = linalg.stats_at(vectors, valid, sigs[:, 0], sigs[:, 1])
        at = 0
        for i, name, when, sig in asked:
            kind = batches[i].pending.kinds[name]  # type: ignore[union-attr]
            results[(i, name, when)] = _stat(kind, stats)[at : at + sig.shape[0]]
            at += sig.shape[0]
    out = []
    for i, batch in enumerate(batches):
        if batch.pending is None:
            out.append(batch)
            continue
        values = dict(batch.values)
        keep = batch.pending.required.copy()
        for name in batch.pending.group_of:
            now, before = results[(i, name, "now")], results[(i, name, "before")]
            values[name] = now
            keep |= differs(now, before)
        resolved = RowBatch(batch.view, batch.entity_key, batch.valid_from, values)
        if keep.any():
            out.append(resolved if keep.all() else resolved.select(keep))
    return out
