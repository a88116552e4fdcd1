"""Errors of the model stage. Every message names the offending value."""

from feature_store.errors import FeatureStoreError


class ModelIntegrityError(FeatureStoreError, ValueError):
    """A model file's sha256 is not the one the code was built and tested against."""


class ModelSourceError(FeatureStoreError, LookupError):
    """A model's package or one of its files is not installed."""
