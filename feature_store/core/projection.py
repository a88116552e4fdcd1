"""A fitted PCA projection as a versioned artefact both jobs load.

The batch job fits it on a stated sample of an embedding field (`Sample`) and saves it
as `<dir>/<name>-<version>.npz` (mean, components, explained variance, and the metadata
as JSON). The version is a hash of the fitted matrix, the mean, the sample's statement,
the input field and the dimension: a refit on the same sample gives the same version,
another sample or another matrix a new one. Both jobs `load` the same file and apply the
same matrix with `transform` (the JAX kernel of `feature_store.core.linalg`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from feature_store.core import linalg
from feature_store.errors import FeatureDefinitionError

FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class Sample:
    """What the projection was fitted on, stated so that it can be drawn again."""

    source: str  # e.g. "review_content.embedding_semantic, archive 2026-11-01..2026-11-07"
    rows: int  # rows drawn
    seed: int  # seed of the draw

    def __post_init__(self) -> None:
        if not self.source or self.rows < 2:
            msg = f"a PCA sample needs a source and at least 2 rows, got {self!r}"
            raise FeatureDefinitionError(msg)


@dataclass(frozen=True, kw_only=True)
class Projection:
    """A fitted PCA of `input_feature` to `dim` dimensions, with its version."""

    name: str
    input_feature: str
    dim: int
    sample: Sample
    fit: linalg.PCAFit
    version: str

    def transform(self, vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
        return linalg.pca_transform(self.fit, vectors)

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.npz"

    def to_bytes(self) -> bytes:
        """The saved file's contents (`from_bytes` reads them back)."""
        out = io.BytesIO()
        np.savez(
            out,
            mean=self.fit.mean,
            components=self.fit.components,
            explained_variance=self.fit.explained_variance,
            metadata=np.array(json.dumps(self._metadata(), sort_keys=True)),
        )
        return out.getvalue()

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.file_name
        path.write_bytes(self.to_bytes())
        return path

    def _metadata(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "name": self.name,
            "input_feature": self.input_feature,
            "dim": self.dim,
            "width": int(self.fit.mean.shape[0]),
            "fitted_rows": self.fit.rows,
            "sample": asdict(self.sample),
            "version": self.version,
        }


def version_of(
    fit: linalg.PCAFit, *, name: str, input_feature: str, dim: int, sample: Sample
) -> str:
    digest = hashlib.sha256()
    statement = {"name": name, "input": input_feature, "dim": dim, "sample": asdict(sample)}
    digest.update(json.dumps(statement, sort_keys=True).encode())
    for array in (fit.mean, fit.components):
        digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
    return digest.hexdigest()[:16]


def fit_projection(
    vectors: npt.ArrayLike, *, name: str, input_feature: str, dim: int, sample: Sample
) -> Projection:
    """Fit on `vectors`, which must be the `sample.rows` rows the sample states."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        msg = f"projection name must be lower_snake_case, got {name!r}"
        raise FeatureDefinitionError(msg)
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != sample.rows:
        msg = f"sample states {sample.rows} rows, got vectors of shape {matrix.shape}"
        raise FeatureDefinitionError(msg)
    fit = linalg.pca_fit(matrix, dim)
    version = version_of(fit, name=name, input_feature=input_feature, dim=dim, sample=sample)
    return Projection(
        name=name, input_feature=input_feature, dim=dim, sample=sample, fit=fit, version=version
    )


def load(path: Path) -> Projection:
    """A saved projection; its version is recomputed and must match the file's."""
    return from_bytes(path.read_bytes(), path.name)


def from_bytes(contents: bytes, label: str) -> Projection:
    """A projection from a saved file's contents (`label` names it in errors)."""
    path = Path(label)
    with np.load(io.BytesIO(contents), allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
        fit = linalg.PCAFit(
            mean=data["mean"],
            components=data["components"],
            explained_variance=data["explained_variance"],
            rows=int(meta["fitted_rows"]),
        )
    if meta.get("format") != FORMAT:
        msg = f"projection file {path.name} has format {meta.get('format')!r}, not {FORMAT}"
        raise FeatureDefinitionError(msg)
    sample = Sample(**meta["sample"])
    version = version_of(
        fit, name=meta["name"], input_feature=meta["input_feature"], dim=meta["dim"], sample=sample
    )
    if version != meta["version"]:
        msg = f"projection file {path.name} says version {meta['version']}, contents are {version}"
        raise FeatureDefinitionError(msg)
    return Projection(
        name=meta["name"],
        input_feature=meta["input_feature"],
        dim=int(meta["dim"]),
        sample=sample,
        fit=fit,
        version=version,
    )
