"""Counting what a job reads, and reconciling its counters.

Every message a job reads is counted once where it enters (`CountElements`); the
validation, de-duplication and window steps count where each one leaves. The
equations below tie them together, so a message lost between steps shows up as a
reconciliation that does not balance:

- stream: `received = valid + invalid + duplicates` (valid: distinct valid events;
  `late` and `rejected` are counted apart: late events are valid events the windows
  refused, rejected rows are outputs an online store refused);
- backfill: `lines = valid + invalid + duplicates`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from common.beam_types import PColl, Transform
from common.metrics import JobCounter


class _Count(beam.DoFn):
    def __init__(self, namespace: str, name: str, sized: bool = False) -> None:
        self.counter = JobCounter(namespace, name)
        self.sized = sized

    def process(self, element: Any) -> Any:
        self.counter.inc(len(element) if self.sized else 1)
        yield element


class CountElements(Transform):
    """Passes elements through unchanged, counting them in `namespace/name`; with
    `sized=True` the elements are lists and each counts its length."""

    def __init__(self, namespace: str, name: str, *, sized: bool = False) -> None:
        super().__init__()
        self.namespace, self.name, self.sized = namespace, name, sized

    def expand(self, items: PColl) -> PColl:
        counted: PColl = items | "Count" >> beam.ParDo(
            _Count(self.namespace, self.name, self.sized)
        )
        return counted


def stream_reconciliation(counters: Mapping[str, int]) -> dict[str, Any]:
    """The stream's counters as the equation `received = valid + invalid + duplicates`."""
    duplicates = counters.get("events_duplicate", 0)
    parts = {
        "received": counters.get("events_received", 0),
        "valid": counters.get("events_valid", 0) - duplicates,
        "invalid": counters.get("events_invalid", 0),
        "duplicates": duplicates,
        "late": counters.get("events_late", 0),
        "rejected": counters.get("rows_rejected", 0),
        "history_invalid": counters.get("history_invalid", 0),
    }
    total = parts["valid"] + parts["invalid"] + parts["duplicates"]
    parts["balanced"] = parts["received"] == total
    return parts


def batch_reconciliation(counters: Mapping[str, int]) -> dict[str, Any]:
    """The backfill's counters as the equation `lines = valid + invalid + duplicates`."""
    duplicates = counters.get("events_duplicate", 0)
    parts = {
        "lines": counters.get("lines_read", 0),
        "valid": counters.get("events_valid", 0) - duplicates,
        "invalid": counters.get("events_invalid", 0),
        "duplicates": duplicates,
        "rejected": counters.get("rows_rejected", 0),
    }
    parts["balanced"] = parts["lines"] == parts["valid"] + parts["invalid"] + duplicates
    return parts
