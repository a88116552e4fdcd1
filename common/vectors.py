"""The kernel stage of the vector features (`EvaluateVectorFeatures`), for both jobs.

The exact-window steps (the stream's stateful step, the backfill's change points) emit
rows whose vector features are pending (`feature_store.core.pending`): the change
points are exact, the values are left to this stage, which batches rows of many users
and evaluates them in a few JAX kernel calls (`feature_store.core.vector_rows`), then
drops the rows whose values did not change. Rows of views without vector features
(`ChangeRows`, or `RowBatch`es with nothing pending) pass through unchanged.

The kernels are jitted once per worker process: `feature_store.core.linalg` wraps them
at import, which happens at the first pending row (the local runner calls `setup` per
bundle; the module, and its compiled code, stays), so jobs without vector features never
load jax. JAX must not take the whole GPU from the models
sharing it: `setup` sets `XLA_PYTHON_CLIENT_PREALLOCATE=false` before jax is imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam

from common.beam_types import PColl
from common.metrics import JobCounter
from common.row_coder import RowBatches  # (also registers the coders they cross shuffles with)
from common.stages import LINALG_GPU_HINTS, LINALG_HINTS, Stage
from feature_store.core.windows import ChangeRows, RowBatch

MAX_BATCH = 256  # RowBatches (users) per kernel evaluation
ROWS_UNCHANGED = "vector_rows_unchanged"
"""Rows dropped because their evaluated vector features did not change (counted in the
job's in-process tally too: `jobs.stream.StreamProgress` accounts for every row)."""


def no_jax_preallocation() -> None:
    """JAX takes 75% of a GPU at first use unless told otherwise; a worker that also runs
    torch models must not let it (effective only before jax is first imported)."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


class _Resolve(beam.DoFn):
    def __init__(self, counter_namespace: str, per_shard: bool = False) -> None:
        self.namespace, self.per_shard = counter_namespace, per_shard

    def setup(self) -> None:
        no_jax_preallocation()
        self.dropped = JobCounter(self.namespace, ROWS_UNCHANGED)

    def process(self, rows: list[Any]) -> Iterator[RowBatch | ChangeRows | RowBatches]:
        if not self.per_shard:
            yield from self._resolved(rows)
            return
        for shard in rows:  # shards with nothing pending pass as they came
            if any(b.pending is not None for b in shard):
                break
        else:
            yield from rows
            return
        flat: list[RowBatch | ChangeRows] = [b for shard in rows for b in shard]
        resolved = [b for b in self._resolved(flat) if isinstance(b, RowBatch)]
        if resolved:  # at most `max_batch` batches, or one shard's: still bounded
            yield RowBatches(resolved)

    def _resolved(self, batches: list[RowBatch | ChangeRows]) -> Iterator[RowBatch | ChangeRows]:
        if all(not isinstance(b, RowBatch) or b.pending is None for b in batches):
            yield from batches  # views without vector features: jax is never loaded
            return
        from feature_store.core import vector_rows  # jitted at import, once per process

        # a key's rows are all of one form (its view has running windows or not): the
        # `ChangeRows` pass first, then the batches, each key's rows still in their order
        held = [b for b in batches if isinstance(b, RowBatch)]
        yield from (b for b in batches if not isinstance(b, RowBatch))
        resolved = vector_rows.resolve(held)
        dropped = sum(len(b) for b in held) - sum(len(b) for b in resolved)
        if dropped:
            self.dropped.inc(dropped)
        yield from resolved


class EvaluateVectorFeatures(Stage):
    """RowBatches with pending vector features → the same rows evaluated (JAX kernels).

    `hints` replaces the stage's own (`LINALG_HINTS`; `accelerator=True` asks for
    `LINALG_GPU_HINTS`). `per_shard`: the elements are `RowBatches` (the batch job's, a
    feature shard's each), batched up to `max_batch` `RowBatch`es per kernel evaluation,
    and the output is `RowBatches` too (the evaluated batches of the shards evaluated
    together), which crosses a shuffle with `RowBatchesCoder`; the streaming job's rows
    also come as `ChangeRows`, one per element."""

    RESOURCE_HINTS = LINALG_HINTS

    def __init__(
        self,
        namespace: str,
        *,
        accelerator: bool = False,
        hints: Mapping[str, str] | None = None,
        max_batch: int = MAX_BATCH,
        per_shard: bool = False,
    ) -> None:
        super().__init__()
        self.per_shard = per_shard
        if max_batch < 1:
            msg = f"max_batch must be positive, got {max_batch}"
            raise ValueError(msg)
        self.namespace, self.max_batch = namespace, max_batch
        chosen = hints or (LINALG_GPU_HINTS if accelerator else None)
        if chosen is not None:
            self.with_resource_hints(**chosen)

    def expand(self, rows: PColl) -> Any:
        kernels = beam.ParDo(_Resolve(self.namespace, self.per_shard))
        batch = beam.BatchElements(min_batch_size=1, max_batch_size=self.max_batch)
        if self.per_shard:
            kernels = kernels.with_output_types(RowBatches)
            # A fixed size: a shard's batches hold a similar number of users, so Beam's
            # adaptive estimator would time equal sizes only, and its regression divides by
            # zero (numpy warnings on the job's log).
            batch = beam.BatchElements(
                min_batch_size=self.max_batch,
                max_batch_size=self.max_batch,
                element_size_fn=len,
            )
        return rows | "Batch" >> batch | "Kernels" >> kernels
