"""A feature view compiled for computation: what columns to hold, which windows exist."""

from __future__ import annotations

from dataclasses import dataclass

from feature_store.core.columns import FieldSpec
from feature_store.definitions import Condition, DType, aggregation_kind
from feature_store.registry import Registry


@dataclass(frozen=True)
class FeaturePlan:
    name: str
    kind: str
    field: str | None
    window: int | None  # microseconds; None = unbounded
    where: Condition | None
    share_where: Condition | None
    dtype: DType
    dim: int | None = None


@dataclass(frozen=True)
class ViewPlan:
    """Everything the core needs about one view; built once per job from the registry."""

    view: str
    entity: str
    join_key: str
    source: str
    where: Condition | None
    features: tuple[FeaturePlan, ...]
    fields: tuple[FieldSpec, ...]
    models: tuple[str, ...] = ()

    @classmethod
    def build(cls, registry: Registry, view_name: str) -> ViewPlan:
        view = registry.view(view_name)
        entity = registry.entity(view.entity)
        features = []
        needed: dict[str, FieldSpec] = {}
        for ref, feature in zip(registry.feature_refs(view), view.features, strict=True):
            agg = feature.aggregation
            features.append(
                FeaturePlan(
                    name=feature.name,
                    kind=agg.kind,
                    field=agg.field,
                    window=feature.window_spec.micros,
                    where=agg.where,
                    share_where=agg.share_where,
                    dtype=ref.dtype,
                    dim=ref.dim,
                )
            )
            used = [agg.field] + [c.field for c in (agg.where, agg.share_where) if c]
            for name in filter(None, used):
                found = registry.field_of(view.source, name)
                assert found is not None  # the registry validated it
                dim = getattr(found, "dim", None)
                needed[name] = FieldSpec(name=name, dtype=found.dtype, dim=dim)
        if view.where is not None:
            found = registry.field_of(view.source, view.where.field)
            assert found is not None
            needed[view.where.field] = FieldSpec(name=view.where.field, dtype=found.dtype)
        needed.pop("event_time", None)  # held as `times`
        return cls(
            view=view.name,
            entity=entity.name,
            join_key=entity.join_key,
            source=view.source,
            where=view.where,
            features=tuple(features),
            fields=tuple(needed.values()),
            models=registry.models_needed(view),
        )

    @property
    def windows(self) -> tuple[int, ...]:
        return tuple(sorted({f.window for f in self.features if f.window is not None}))

    @property
    def longest(self) -> int:
        return max(self.windows, default=0)

    @property
    def prunable(self) -> bool:
        """Whether old events can be dropped (unbounded features fold into a summary)."""
        return all(f.window is not None or aggregation_kind(f.kind).foldable for f in self.features)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)
