"""Rows an online store refused, as dead letters: nothing a job computes is dropped.

`WriteToOnlineStores` outputs a `RejectedRow` for each row it cannot encode. Both jobs
send them where their invalid events go (the stream: `<topic>-dlq` of the view's source
topic; the backfill: its dead-letter file), as a `DeadLetter` whose raw bytes are the
row as JSON, with reason `online_rejected` and the encoder's explanation as detail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows
from google.protobuf.json_format import MessageToDict

from common.beam_types import PColl, Transform
from feature_store.errors import ConfigError
from feature_store.events import DeadLetter
from online.rows import RejectedRow

REASON = "online_rejected"


def _entity(key: Any) -> Any:
    if isinstance(key, tuple) and len(key) == 2:
        names, values = key
        try:
            return dict(zip(names, values, strict=True))
        except (TypeError, ValueError):
            return {"join_keys": repr(names), "values": repr(values)}
    if hasattr(key, "DESCRIPTOR"):
        return MessageToDict(key)
    return repr(key)


def rejected_dead_letter(rejected: RejectedRow, topics: Mapping[str, str]) -> DeadLetter:
    """`topics`: the source topic of each view. A row of a view not named there is
    filed under the first topic, its view named in the body."""
    row = rejected.row
    body = {
        "view": row.view,
        "entity_key": _entity(row.entity_key),
        "valid_from": row.valid_from.isoformat(),
        "features": dict(row.features),
    }
    raw = json.dumps(body, default=repr, sort_keys=True).encode()
    topic = topics.get(row.view) or next(iter(topics.values()))
    return DeadLetter(
        topic=topic,
        raw=raw,
        attributes={"view": row.view},
        reason=REASON,
        detail=rejected.reason,
    )


class RejectedToDeadLetters(Transform):
    """`RejectedRow`s → `DeadLetter`s under their view's source topic, in the global
    window (where the jobs' other dead letters are)."""

    def __init__(self, topics: Mapping[str, str]) -> None:
        super().__init__()
        if not topics:
            msg = f"RejectedToDeadLetters needs the source topic of each view, got {topics!r}"
            raise ConfigError(msg)
        self.topics = dict(topics)

    def expand(self, rejected: PColl) -> PColl:
        letters: PColl = (
            rejected
            | "AsDeadLetters" >> beam.Map(rejected_dead_letter, self.topics)
            | "GlobalWindow" >> beam.WindowInto(GlobalWindows())
        )
        return letters
