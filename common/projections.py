"""Declared projections (`DerivedField(producer="pca:<input>:<dim>")`) in both jobs.

- `ProjectionStore`: where fitted projections live, for both jobs to read: the state
  directory locally, a `gs://` path on Dataflow (Beam's `FileSystems` reads and writes
  either). Each is `<root>/projections/<field>-<version>.npz` (see
  `feature_store.core.projection`), and `<root>/projections/<field>.latest` names the
  version the jobs apply.
- `FitProjections` (the batch job): a stated, reproducible sample of each input field,
  the `rows` events whose sha256 of `"<seed>:<event_id>"` is smallest among the run's
  events carrying the input, fitted with the JAX PCA kernel, saved, and made latest.
- `ApplyProjections` (both jobs): adds each projected field to the records that carry
  its input, with the fitted matrix: the batch job the one it just fitted, the stream
  the latest saved when it starts (the same file, so the same numbers).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms import combiners

from common.beam_types import PColl
from common.stages import LINALG_HINTS, Stage
from feature_store.definitions import DerivedField
from feature_store.registry import Registry

log = logging.getLogger(__name__)

SAMPLE_ROWS = 4096
SAMPLE_SEED = 0
Record = dict[str, Any]

if TYPE_CHECKING:  # the module imports jax: loaded where a projection is fitted or read
    from feature_store.core.projection import Projection


def declared_projections(registry: Registry, sources: Iterable[str]) -> dict[str, DerivedField]:
    """The projected fields of `sources`, by name."""
    return {
        d.name: d
        for source in sources
        for d in registry.derived_fields(source)
        if d.projection is not None
    }


def used_projections(registry: Registry, plans: Sequence[Any]) -> dict[str, DerivedField]:
    """The projected fields that the plans' views read (the jobs' projection stages run
    only for these)."""
    used = {spec.name for plan in plans for spec in plan.fields}
    declared = declared_projections(registry, {plan.source for plan in plans})
    return {name: field for name, field in declared.items() if name in used}


class ProjectionStore:
    """Fitted projections under `root` (a directory or a `gs://` path)."""

    def __init__(self, root: str) -> None:
        self.folder = FileSystems.join(root, "projections")

    def _path(self, name: str) -> str:
        return FileSystems.join(self.folder, name)

    def save(self, projection: Projection) -> str:
        """Writes the projection and makes it the latest of its field; returns its path."""
        path = self._path(projection.file_name)
        if not FileSystems.exists(self.folder):
            FileSystems.mkdirs(self.folder)  # a local directory; object stores have none
        with FileSystems.create(path) as out:
            out.write(projection.to_bytes())
        with FileSystems.create(self._path(f"{projection.name}.latest")) as out:
            out.write(projection.version.encode())
        return path

    def latest(self, name: str) -> Projection | None:
        """The latest projection of field `name`, or None if none was saved."""
        from feature_store.core.projection import from_bytes

        pointer = self._path(f"{name}.latest")
        if not FileSystems.exists(pointer):
            return None
        with FileSystems.open(pointer) as f:
            version = f.read().decode().strip()
        path = self._path(f"{name}-{version}.npz")
        with FileSystems.open(path) as f:
            return from_bytes(f.read(), path)


def sample_rank(seed: int, event_id: str) -> str:
    """An event's place in the stated sample (smallest first)."""
    return hashlib.sha256(f"{seed}:{event_id}".encode()).hexdigest()


def _inputs(
    records: list[Record], fields: Mapping[str, DerivedField], seed: int
) -> Iterator[tuple[str, tuple[str, str, list[float]]]]:
    for record in records:
        for name, field in fields.items():
            vector = record.get(field.input)
            if vector is not None:
                yield name, (sample_rank(seed, record["event_id"]), record["event_id"], vector)


class _Fit(beam.DoFn):
    def __init__(
        self, fields: Mapping[str, DerivedField], root: str, seed: int, refit: bool
    ) -> None:
        self.fields, self.root, self.seed, self.refit = fields, root, seed, refit

    def process(
        self, item: tuple[str, list[tuple[str, str, list[float]]]]
    ) -> Iterator[tuple[str, Projection]]:
        from feature_store.core.projection import Sample, fit_projection

        name, drawn = item
        field = self.fields[name]
        if not self.refit:  # a fitted projection stays: its values compare across runs
            kept = ProjectionStore(self.root).latest(name)
            if kept is not None:
                log.info("projection %s: keeping version %s", name, kept.version)
                yield name, kept
                return
        if len(drawn) < 2:
            log.warning("projection %s: %d sampled rows, not fitted", name, len(drawn))
            return
        sample = Sample(
            source=(
                f"{field.input}: the {len(drawn)} events with the smallest "
                f"sha256('{self.seed}:' + event_id) of the backfill's input"
            ),
            rows=len(drawn),
            seed=self.seed,
        )
        reduction = field.projection
        assert reduction is not None
        projection = fit_projection(
            np.array([v for *_, v in drawn], dtype=np.float32),
            name=name,
            input_feature=field.input,
            dim=reduction[1],
            sample=sample,
        )
        path = ProjectionStore(self.root).save(projection)
        log.info("projection %s version %s saved to %s", name, projection.version, path)
        yield name, projection


class FitProjections(Stage):
    """Lists of records → (field, fitted Projection), one per declared field with a
    sample of at least 2 rows; each is saved to the store and made latest. A field that
    already has a latest projection keeps it unless `refit`: the online values the stream
    computed with it, and earlier offline rows, stay comparable with this run's."""

    RESOURCE_HINTS = LINALG_HINTS

    def __init__(
        self,
        fields: Mapping[str, DerivedField],
        root: str,
        rows: int = SAMPLE_ROWS,
        seed: int = SAMPLE_SEED,
        *,
        refit: bool = False,
    ) -> None:
        super().__init__()
        self.refit = refit
        if rows < 2:
            msg = f"a projection's sample needs at least 2 rows, got {rows}"
            raise ValueError(msg)
        self.fields, self.root, self.rows, self.seed = dict(fields), root, rows, seed

    def expand(self, batches: PColl) -> PColl:
        fitted: PColl = (
            batches
            | "SampleInputs" >> beam.FlatMap(_inputs, self.fields, self.seed)
            | "StatedSample" >> combiners.Top.SmallestPerKey(self.rows)
            | "Fit" >> beam.ParDo(_Fit(self.fields, self.root, self.seed, self.refit))
        )
        return fitted


def project(
    records: Sequence[Record],
    fields: Mapping[str, DerivedField],
    fitted: Mapping[str, Projection | None],
) -> list[Record]:
    """The records with each projected field set (None where its input is null or no
    projection is fitted), in one kernel call per field."""
    out = [dict(r) for r in records]
    for name, field in fields.items():
        projection = fitted.get(name)
        have = [i for i, r in enumerate(out) if r.get(field.input) is not None]
        for r in out:
            r[name] = None
        if projection is None or not have:
            continue
        matrix = np.array([out[i][field.input] for i in have], dtype=np.float32)
        for i, row in zip(have, projection.transform(matrix), strict=True):
            out[i][name] = row.tolist()
    return out


class _ApplyLatest(beam.DoFn):
    """Single records, with the projections saved latest when the worker starts."""

    def __init__(self, fields: Mapping[str, DerivedField], root: str) -> None:
        self.fields, self.root = fields, root

    def setup(self) -> None:
        store = ProjectionStore(self.root)
        self.fitted = {name: store.latest(name) for name in self.fields}
        for name, found in self.fitted.items():
            if found is None:
                log.warning(
                    "projection %s: none saved under %s, the field stays null", name, self.root
                )

    def process(self, record: Record) -> Iterator[Record]:
        yield from project([record], self.fields, self.fitted)


class ApplyProjections(Stage):
    """Records (the stream: the latest saved projections) or lists of records (the batch
    job: `fitted`, its own fit as a side input) → the same with the projected fields."""

    RESOURCE_HINTS = LINALG_HINTS

    def __init__(
        self,
        fields: Mapping[str, DerivedField],
        root: str,
        fitted: PColl | None = None,
    ) -> None:
        super().__init__()
        self.fields, self.root, self.fitted = dict(fields), root, fitted

    def expand(self, records: PColl) -> PColl:
        projected: PColl
        if self.fitted is None:
            projected = records | "Project" >> beam.ParDo(_ApplyLatest(self.fields, self.root))
        else:
            projected = records | "Project" >> beam.Map(
                project, self.fields, beam.pvalue.AsDict(self.fitted)
            )
        return projected
