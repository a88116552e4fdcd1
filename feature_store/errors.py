"""The project's exceptions. Every message names the offending value."""


class FeatureStoreError(Exception):
    """Base class of every error the platform raises on purpose."""


class FeatureDefinitionError(FeatureStoreError, ValueError):
    """A feature declaration (entity, source, window, aggregation, view) is invalid."""


class ConfigError(FeatureStoreError, ValueError):
    """A setting or option has an invalid value."""


class InvalidEventError(FeatureStoreError, ValueError):
    """An event message breaks the event contract; `reason` is a short machine code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
