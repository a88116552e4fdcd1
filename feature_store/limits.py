"""Limits checked before a message is parsed, and the dead letters they give.

The largest valid event is about 120 KiB: a `text` of `events.MAX_TEXT_CHARS` characters
written as six-byte JSON escapes, plus the other fields. A message above
`MAX_MESSAGE_BYTES`, twice that, is a dead letter without being decoded or parsed, so
a producer that sends megabytes cannot make a worker spend its memory and time on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from feature_store.events import DeadLetter

MAX_MESSAGE_BYTES: Final = 256 * 1024
TOO_LARGE: Final = "message_too_large"
VALIDATION_FAILED: Final = "validation_failed"


def oversized(
    topic: str, raw: bytes, attributes: Mapping[str, str], limit: int = MAX_MESSAGE_BYTES
) -> DeadLetter | None:
    """A dead letter for a message longer than `limit` bytes, else None."""
    if len(raw) <= limit:
        return None
    detail = f"message of {len(raw)} bytes is larger than the limit of {limit} bytes"
    return DeadLetter(topic, bytes(raw), dict(attributes), TOO_LARGE, detail)


def failed(topic: str, raw: bytes, attributes: Mapping[str, str], error: Exception) -> DeadLetter:
    """A dead letter for a message whose validation raised an unexpected error: a
    poison message must not fail its bundle again and again."""
    detail = f"validation raised {type(error).__name__}: {error}"[:1000]
    return DeadLetter(topic, bytes(raw), dict(attributes), VALIDATION_FAILED, detail)
