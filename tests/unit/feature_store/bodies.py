"""Event bodies for the contract tests: a valid body with some fields overridden."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DROP = object()  # an override that removes the field


def overridden(
    body: Mapping[str, Any], overrides: Mapping[str, Any], drop: object = DROP
) -> dict[str, Any]:
    """`body` with `overrides` applied, less the fields whose value is `drop`."""
    merged = {**body, **overrides}
    return {k: v for k, v in merged.items() if v is not drop}
