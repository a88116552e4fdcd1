"""Per-event derived values computed in the feature stage (not by a model)."""

from __future__ import annotations

from collections.abc import Sequence

from feature_store.definitions import DerivedField
from feature_store.errors import FeatureDefinitionError


def _length(value: object) -> int | None:
    return None if value is None else len(str(value))


_BUILTIN = {"length": _length}


def add_derived(record: dict[str, object], derived: Sequence[DerivedField]) -> dict[str, object]:
    """Adds the built-in derived fields (model outputs come from the inference stage,
    projections from the projection stage)."""
    for field in derived:
        if field.model is not None or field.projection is not None:
            continue
        function = _BUILTIN.get(field.producer)
        if function is None:
            msg = f"derived field `{field.name}` has no built-in producer {field.producer!r}"
            raise FeatureDefinitionError(msg)
        record[field.name] = function(record.get(field.input))
    return record
