"""A message body as the event contract reads it: one UTF-8 JSON object, without
repeated keys, non-standard constants or lone surrogates; and values shown short in
error messages (`feature_store.events` documents the rules)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final

from feature_store.errors import InvalidEventError
from feature_store.event_reasons import Reason

_SHOWN_CHARS = 80


def _show(value: object) -> str:
    """A value as it appears in JSON, cut short for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _SHOWN_CHARS:
        text = f"{text[:_SHOWN_CHARS]}... ({len(text)} chars)"
    return text


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object" if isinstance(value, Mapping) else type(value).__name__)


def _reject_constant(name: str) -> object:
    msg = f"non-standard JSON constant {name}"
    raise InvalidEventError(Reason.NOT_JSON, msg)


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                msg = f"key {_show(key)} appears more than once in one object"
                raise InvalidEventError(Reason.DUPLICATE_KEY, msg)
            seen.add(key)
    return obj


# One decoder for every message (`json.loads` with hooks builds a new one per call); a
# leading BOM goes through `json.loads` itself, which rejects it with its own message.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_unique_object, parse_constant=_reject_constant
)


MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of arrays and objects a message may have (an event is a flat object).
Checked before parsing: the JSON scanner's own limit is the interpreter's recursion
limit less the caller's stack, so without this bound the same deep message would be
`not_object` in one call and `not_json` in a deeper one."""
_STRINGS: Final = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS: Final = re.compile(r"[\[\]{}]")


def _nested_deeper_than(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:  # the common case: no scan
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _load(raw: bytes) -> dict[str, object]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 4]
        msg = f"byte {raw[exc.start]:#04x} at offset {exc.start} is not UTF-8 ({bad!r}...)"
        raise InvalidEventError(Reason.NOT_UTF8, msg) from None
    if _nested_deeper_than(text, MAX_JSON_DEPTH):
        msg = f"body {_show(text)} nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        raise InvalidEventError(Reason.NOT_JSON, msg)
    try:
        obj = _DECODER.decode(text) if not text.startswith("\ufeff") else json.loads(text)
    except InvalidEventError:
        raise
    except (ValueError, RecursionError) as exc:
        msg = f"body {_show(text)} is not JSON: {exc}"
        raise InvalidEventError(Reason.NOT_JSON, msg) from None
    if not isinstance(obj, dict):
        msg = f"body is a JSON {_json_type(obj)}, not an object: {_show(obj)}"
        raise InvalidEventError(Reason.NOT_OBJECT, msg)
    if "\\u" in text:  # escapes may encode lone surrogates, which UTF-8 cannot carry
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            msg = f"a string escape encodes a lone surrogate U+{ord(exc.object[exc.start]):04X}"
            raise InvalidEventError(Reason.NOT_UTF8, msg) from None
    return obj


def _wrong_type(name: str, value: object, expected: str) -> InvalidEventError:
    msg = f"field `{name}` must be {expected}, got {_json_type(value)} {_show(value)}"
    return InvalidEventError(Reason.WRONG_TYPE, msg)
