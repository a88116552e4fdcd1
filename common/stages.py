"""What every pipeline stage shares: the resource hints it owns, and how a job's composite
transform is applied without renaming its stages.

A stage declares its hints once, on its class (as Beam's `ModelHandler.get_resource_hints()`
does for `RunInference`), so whichever job uses it asks Dataflow Prime for the same
right-sized workers; `with_resource_hints` still overrides them for one use. A new stage
(inference, a JAX kernel) is one class and one line in a job's `expand()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

import apache_beam as beam
from apache_beam.pvalue import PBegin
from apache_beam.transforms import resources

IO_HINTS: Final[Mapping[str, str]] = {"min_ram": "4GB"}
FEATURE_HINTS: Final[Mapping[str, str]] = {"min_ram": "32GB"}


class Stage(beam.PTransform):  # type: ignore[misc]
    """A pipeline stage with its own resource hints (`RESOURCE_HINTS`, Beam's names)."""

    RESOURCE_HINTS: ClassVar[Mapping[str, str]] = {}

    def get_resource_hints(self) -> dict[str, bytes]:
        hints: dict[str, bytes] = super().get_resource_hints()
        for urn, value in resources.parse_resource_hints(dict(self.RESOURCE_HINTS)).items():
            hints.setdefault(urn, value)
        return hints


def expand_at_top_level(pipeline: beam.Pipeline, job: beam.PTransform) -> Any:
    """Expands a job's composite transform with its stages at the pipeline's top level.

    Applied with `pipeline | job`, every stage would be renamed `<job>/<stage>`; Dataflow's
    `--update` maps a running job's state to the new one by stage label, so the stages keep
    the labels running jobs were launched with.
    """
    return job.expand(PBegin(pipeline))
