"""Which models the jobs run, on which reviews, and which views that lets them compute.

Light on purpose (no torch): the jobs plan their views with it before any model loads.

- `models`: the model keys run (`semantic`, `paraphrase`), or none. A view is computed
  only when every model it reads runs; otherwise it is skipped with the reason, never
  filled with made-up values.
- `sample`: the share of `sample_field` values (a stable hash, the same in every job and
  run) whose events go through the models. Sampling whole users keeps every value
  exact: a user's model views see all of that user's reviews, and reviews of the users
  left out have no model rows (absent, never estimated). 1.0 runs every review.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from feature_store.core.plan import ViewPlan
from feature_store.registry import Registry

SEMANTIC: Final = "semantic"
PARAPHRASE: Final = "paraphrase"
# Output fields per model (the names of the derived fields in feature_store.reference).
OUTPUTS: Final[Mapping[str, Mapping[str, str]]] = {
    SEMANTIC: {"embedding": "embedding_semantic", "sentiment": "sentiment"},
    PARAPHRASE: {"embedding": "embedding_paraphrase"},
}
MODEL_OF_FIELD: Final[Mapping[str, str]] = {
    column: model for model, outputs in OUTPUTS.items() for column in outputs.values()
}
NONE = "none"
HASH_RANGE = 2**32
SENT: Final = "model_records_sent"
BACK: Final = "model_records_back"
"""The job counters of the records the model stage took, and gave back (with their model
fields, or refused). A record waits in the stage's join for its models' outputs, in state
that holds no watermark on Beam's local runner: `SENT - BACK` is what is still inside."""


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """The models the jobs run and the share of users whose reviews they see."""

    models: tuple[str, ...] = (SEMANTIC, PARAPHRASE)
    sample: float = 1.0
    sample_field: str = "user_id"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(OUTPUTS))
        if unknown or len(set(self.models)) != len(self.models):
            msg = f"models must be distinct names among {sorted(OUTPUTS)}, got {self.models!r}"
            raise ValueError(msg)
        if not 0 < self.sample <= 1:
            msg = f"model sample must be in (0, 1], got {self.sample}"
            raise ValueError(msg)

    @classmethod
    def parse(cls, models: str, sample: float = 1.0) -> ModelSettings:
        """`semantic,paraphrase`, `semantic` or `none` (the command line's form)."""
        names = [m.strip() for m in models.split(",") if m.strip()]
        if names == [NONE]:
            names = []
        elif NONE in names:
            msg = f"`none` cannot be combined with models, got {models!r}"
            raise ValueError(msg)
        return cls(models=tuple(names), sample=sample)

    @property
    def label(self) -> str:
        return ",".join(self.models) or NONE

    def sampled(self, record: Mapping[str, Any]) -> bool:
        """Whether the record's `sample_field` value falls in the sample (stable hash)."""
        if self.sample >= 1:
            return True
        value = record.get(self.sample_field)
        if value is None:
            return False
        return zlib.crc32(str(value).encode("utf-8")) < self.sample * HASH_RANGE


def model_fields(registry: Registry, plan: ViewPlan) -> tuple[str, ...]:
    """The fields of the plan that a model writes (derived fields with a model producer)."""
    derived = {d.name: d for d in registry.derived_fields(plan.source)}
    return tuple(
        f.name for f in plan.fields if f.name in derived and derived[f.name].model is not None
    )


def models_of(fields: Sequence[str]) -> tuple[str, ...]:
    """The model keys that write `fields`, in the catalog's order."""
    wanted = {MODEL_OF_FIELD[f] for f in fields if f in MODEL_OF_FIELD}
    return tuple(m for m in OUTPUTS if m in wanted)


def skip_reason(registry: Registry, plan: ViewPlan, settings: ModelSettings) -> str | None:
    """Why the jobs cannot compute `plan` with these settings; None when they can."""
    fields = model_fields(registry, plan)
    if not fields:
        return None
    orphans = [f for f in fields if f not in MODEL_OF_FIELD]
    if orphans:
        return f"no model of the inference stage writes {', '.join(orphans)}"
    needed = models_of(fields)
    missing = [m for m in needed if m not in settings.models]
    if missing:
        return (
            f"needs the model(s) {', '.join(missing)}, not run here "
            f"(models: {settings.label}; set --models)"
        )
    return None


NO_MODELS = ModelSettings(models=())
"""No model runs: only the views that read no model output are computed."""
