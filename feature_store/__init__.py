"""Feature declarations, the event contract, and (in `core`) the pure computation both
jobs run."""

# The built-in aggregation kinds register on import, before any declaration needs them.
from feature_store.core import kinds as _kinds  # noqa: F401
