"""The registry: holds the declarations, checks cross-references, answers questions.

Everything other tools need (Feast objects, BigQuery schemas, the jobs' plans) is
generated from one `Registry`; nothing is declared twice.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from feature_store.definitions import (
    DerivedField,
    DType,
    Entity,
    EventField,
    Feature,
    FeatureService,
    FeatureView,
    Source,
)
from feature_store.errors import FeatureDefinitionError

ENTITY_KEY_DTYPE = DType.STRING


def _index(kind: str, items: Iterable[object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        name = item.name  # type: ignore[attr-defined]
        if name in out:
            msg = f"{kind} {name!r} is declared more than once"
            raise FeatureDefinitionError(msg)
        out[name] = item
    return out


@dataclass(frozen=True)
class FeatureRef:
    """A resolved `view:feature` with its output type."""

    view: str
    feature: str
    dtype: DType
    dim: int | None = None


@dataclass(frozen=True, kw_only=True)
class Registry:
    """All declarations of one platform. `validate()` runs on construction."""

    entities: tuple[Entity, ...]
    sources: tuple[Source, ...]
    views: tuple[FeatureView, ...]
    derived: tuple[tuple[str, DerivedField], ...] = ()  # (source name, derived field)
    services: tuple[FeatureService, ...] = ()
    _by_name: dict[str, dict[str, object]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name["entity"] = _index("entity", self.entities)
        self._by_name["source"] = _index("source", self.sources)
        self._by_name["view"] = _index("feature view", self.views)
        self._by_name["service"] = _index("feature service", self.services)
        self.validate()

    # -- lookups ---------------------------------------------------------------------
    def entity(self, name: str) -> Entity:
        return self._get("entity", name)  # type: ignore[return-value]

    def source(self, name: str) -> Source:
        return self._get("source", name)  # type: ignore[return-value]

    def view(self, name: str) -> FeatureView:
        return self._get("view", name)  # type: ignore[return-value]

    def service(self, name: str) -> FeatureService:
        return self._get("service", name)  # type: ignore[return-value]

    def _get(self, kind: str, name: str) -> object:
        table = self._by_name[kind]
        if name not in table:
            msg = f"unknown {kind} {name!r}; known: {sorted(table)}"
            raise FeatureDefinitionError(msg)
        return table[name]

    def views_of_source(self, source: str) -> tuple[FeatureView, ...]:
        return tuple(v for v in self.views if v.source == source)

    def derived_fields(self, source: str) -> tuple[DerivedField, ...]:
        return tuple(d for s, d in self.derived if s == source)

    def field_of(self, source: str, name: str) -> EventField | DerivedField | None:
        plain = self.source(source).field(name)
        if plain is not None:
            return plain
        return next((d for d in self.derived_fields(source) if d.name == name), None)

    def models_needed(self, view: FeatureView) -> tuple[str, ...]:
        """Models whose outputs the view reads (the inference stage must run first)."""
        models: set[str] = set()
        for used in self._fields_used(view):
            found = self.field_of(view.source, used)
            while isinstance(found, DerivedField) and found.projection is not None:
                found = self.field_of(view.source, found.input)  # a projection's input
            if isinstance(found, DerivedField) and found.model:
                models.add(found.model)
        return tuple(sorted(models))

    def feature_refs(self, view: FeatureView) -> tuple[FeatureRef, ...]:
        return tuple(self._ref(view, f) for f in view.features)

    def resolve(self, ref: str) -> tuple[FeatureRef, ...]:
        """`view` (all its features) or `view:feature`."""
        view_name, _, feature_name = ref.partition(":")
        view = self.view(view_name)
        if not feature_name:
            return self.feature_refs(view)
        return (self._ref(view, view.feature(feature_name)),)

    def _ref(self, view: FeatureView, feature: Feature) -> FeatureRef:
        agg = feature.aggregation
        spec = agg.spec
        if spec.output is not None:
            return FeatureRef(view.name, feature.name, spec.output)
        found = self.field_of(view.source, agg.field or "")
        assert found is not None  # validated
        dim = found.dim if isinstance(found, DerivedField) else None
        return FeatureRef(view.name, feature.name, found.dtype, dim)

    # -- validation --------------------------------------------------------------------
    def validate(self) -> None:
        for source_name, derived in self.derived:
            source = self.source(source_name)
            if source.field(derived.name) is not None:
                msg = (
                    f"derived field `{derived.name}` clashes with a field of source `{source_name}`"
                )
                raise FeatureDefinitionError(msg)
            if self.field_of(source_name, derived.input) is None:
                msg = (
                    f"derived field `{derived.name}` reads unknown field {derived.input!r} "
                    f"of source `{source_name}`"
                )
                raise FeatureDefinitionError(msg)
            reduction = derived.projection
            found = self.field_of(source_name, derived.input)
            if reduction is not None and (
                found is None
                or found.dtype is not DType.FLOAT32_VECTOR
                or not isinstance(found, DerivedField)
                or (found.dim or 0) < reduction[1]
            ):
                msg = (
                    f"derived field `{derived.name}` reduces {derived.input!r} to "
                    f"{reduction[1]} dims: the input must be a vector field of at least as many"
                )
                raise FeatureDefinitionError(msg)
        for view in self.views:
            self._validate_view(view)
        for service in self.services:
            for ref in service.features:
                try:
                    self.resolve(ref)
                except FeatureDefinitionError as exc:
                    msg = f"feature service `{service.name}`: {exc}"
                    raise FeatureDefinitionError(msg) from exc

    def _validate_view(self, view: FeatureView) -> None:
        entity = self._get_for(view, "entity", view.entity)
        source = self._get_for(view, "source", view.source)
        assert isinstance(entity, Entity) and isinstance(source, Source)
        if source.field(entity.join_key) is None:
            msg = (
                f"feature view `{view.name}`: source `{source.name}` has no field "
                f"{entity.join_key!r} for entity `{entity.name}`"
            )
            raise FeatureDefinitionError(msg)
        for feature in view.features:
            self._validate_feature(view, feature)
        for condition in filter(None, [view.where]):
            self._need_field(view, "the view filter", condition.field)

    def _get_for(self, view: FeatureView, kind: str, name: str) -> object:
        try:
            return self._get(kind, name)
        except FeatureDefinitionError as exc:
            msg = f"feature view `{view.name}`: {exc}"
            raise FeatureDefinitionError(msg) from exc

    def _validate_feature(self, view: FeatureView, feature: Feature) -> None:
        agg = feature.aggregation
        what = f"feature `{feature.name}`"
        for condition in filter(None, [agg.where, agg.share_where]):
            self._need_field(view, what, condition.field)
        if agg.field is None:
            return
        found = self._need_field(view, what, agg.field)
        spec = agg.spec
        is_vector = found.dtype is DType.FLOAT32_VECTOR
        if spec.numeric_field and not found.dtype.numeric:
            msg = (
                f"feature view `{view.name}`: {what} needs a numeric field, "
                f"`{agg.field}` is {found.dtype.value}"
            )
            raise FeatureDefinitionError(msg)
        if spec.field_shape != "any" and (spec.field_shape == "vector") != is_vector:
            need = f"a {spec.field_shape}"
            msg = (
                f"feature view `{view.name}`: {what} ({agg.kind}) needs {need} field, "
                f"`{agg.field}` is {found.dtype.value}"
            )
            raise FeatureDefinitionError(msg)

    def _need_field(self, view: FeatureView, what: str, name: str) -> EventField | DerivedField:
        found = self.field_of(view.source, name)
        if found is None:
            known = [f.name for f in self.source(view.source).fields]
            known += [d.name for d in self.derived_fields(view.source)]
            msg = (
                f"feature view `{view.name}`: {what} reads unknown field {name!r} of "
                f"source `{view.source}`; known: {known}"
            )
            raise FeatureDefinitionError(msg)
        return found

    def _fields_used(self, view: FeatureView) -> set[str]:
        used: set[str] = set()
        for feature in view.features:
            agg = feature.aggregation
            used.update(filter(None, [agg.field]))
            used.update(c.field for c in (agg.where, agg.share_where) if c)
        if view.where:
            used.add(view.where.field)
        return used


def load_registry(spec: str) -> Registry:
    """Import `module:object` (a Registry, or a function returning one)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        msg = f"definitions must be given as module:object, got {spec!r}"
        raise FeatureDefinitionError(msg)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"cannot import definitions module {module_name!r}: {exc}"
        raise FeatureDefinitionError(msg) from exc
    obj = getattr(module, attr, None)
    if callable(obj) and not isinstance(obj, Registry):
        obj = obj()
    if not isinstance(obj, Registry):
        msg = f"{spec!r} is not a Registry (got {type(obj).__name__})"
        raise FeatureDefinitionError(msg)
    return obj
