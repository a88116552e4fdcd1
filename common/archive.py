"""Rows of the raw event archive (one table per source): the typed fields of a valid
event plus the message as received, so nothing a producer sent is lost (unknown fields
stay in `payload`). The nightly backfill and the stream's warm start read it back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from feature_store.events import from_micros, to_micros

ARCHIVE = "archive"


def archive_row(
    raw: bytes,
    attributes: Mapping[str, str],
    publish_us: int | None,
    record: Mapping[str, Any],
    fields: tuple[str, ...],
    timestamps: tuple[str, ...] = ("event_time",),
) -> dict[str, Any]:
    """`record` is the validated event's record; `fields` the source's declared fields,
    `timestamps` those of them that are TIMESTAMPs (µs in the record)."""
    row: dict[str, Any] = {name: record.get(name) for name in fields}
    for name in timestamps:
        if row.get(name) is not None:
            row[name] = from_micros(int(row[name]))
    row["payload"] = raw.decode("utf-8")
    row["attributes"] = json.dumps(dict(attributes), sort_keys=True) if attributes else None
    row["publish_time"] = from_micros(publish_us) if publish_us is not None else None
    row["ingested_at"] = datetime.now(UTC)
    return row


def message_of(row: Mapping[str, Any]) -> tuple[bytes, dict[str, str], int | None]:
    """An archive row back as (raw bytes, attributes, publish µs)."""
    attributes = json.loads(row["attributes"]) if row.get("attributes") else {}
    publish = row.get("publish_time")
    publish_us = to_micros(publish) if publish is not None else None
    return row["payload"].encode("utf-8"), attributes, publish_us
