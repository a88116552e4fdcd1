"""Typed names for the parts of Beam a strict type checker cannot see through.

Beam ships `py.typed`, but its transform classes are generic without defaults
(`PTransform[InputT, OutputT]`, `PCollection[T]`) and most of its constructors
(`Map`, `ParDo`, `GroupByKey`, a counter's `inc`) carry no annotations. The pipeline
code here passes elements of many shapes through one stage, so it types its
collections and transforms over `Any`; this module is the one place that says so:

- `PColl` is the type of a collection in a stage's signature;
- `Transform` is the base class of a composite transform or stage;
- `TimestampParam` and `WindowParam` are Beam's markers for a `process` parameter
  (Beam's own are typed as markers, not as the timestamp or window passed);
- `partition_fn` wraps a callable for `beam.Partition` as Beam itself does (Beam
  annotates `Partition` to take a `PartitionFn` only, though it documents callables).

Calls into Beam's unannotated constructors are the other half: `pyproject.toml` lists
Beam (and the clients without annotations) under mypy's `untyped_calls_exclude`, so the
code calls them as Beam documents, without one `type: ignore` a call. What such a call
(or `pcoll | "Label" >> transform`) gives is `Any`; a stage names the type of what it
returns in an annotated local (`counted: PColl = ...`) rather than return `Any`.

At run time nothing changes: annotations are never evaluated (each module imports
`annotations` from `__future__`), `Transform` is `beam.PTransform` itself, so a subclass
has exactly the bases, labels and type hints it had before, and `partition_fn` gives
`Partition` the very wrapper `Partition` makes of a callable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import apache_beam as beam
from apache_beam.pvalue import PCollection
from apache_beam.transforms.core import CallableWrapperPartitionFn, PartitionFn

__all__ = ["PColl", "TimestampParam", "Transform", "WindowParam", "partition_fn"]

# A collection of elements of any shape, in a stage's signature.
PColl: TypeAlias = PCollection[Any]

if TYPE_CHECKING:
    # The base of a composite transform or stage; at run time plain `beam.PTransform`.
    Transform: TypeAlias = beam.PTransform[Any, Any]
else:
    Transform = beam.PTransform


# The markers a `DoFn.process` parameter defaults to for Beam to pass the element's
# timestamp or window; typed `Any` so that the parameter keeps the type of what it gets.
TimestampParam: Any = beam.DoFn.TimestampParam
WindowParam: Any = beam.DoFn.WindowParam


def partition_fn(fn: Callable[[Any, int], int]) -> PartitionFn:
    """`fn(element, partitions)` as the `PartitionFn` Beam makes of a callable."""
    wrapped: PartitionFn = CallableWrapperPartitionFn(fn)
    return wrapped
