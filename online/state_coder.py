"""An explicit, versioned coder for the streaming job's per-(view, entity) state.

Dataflow's `--update` hands a running job's state to the new code as bytes. Pickled
state ties those bytes to the layout of `EntityState` and `EventColumns` in the code that
wrote them; this format does not: a version byte, a JSON header (scalars, string columns,
folded summaries, and the dtype and shape of each numeric array) and the numeric arrays'
raw bytes, little-endian. A change to the state's layout adds a version and a decoder for
the old one, so a job can be updated without losing its windows.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from apache_beam.coders import Coder

from feature_store.core.columns import AnyArray, EventColumns
from feature_store.core.windows import EntityState

VERSION = 1
_PREFIX = struct.Struct(">BI")  # version, header length


def _plain(value: Any) -> Any:
    """A JSON value for a summary or string-column entry."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    msg = f"entity state holds a value the state coder cannot write: {value!r}"
    raise TypeError(msg)


def _objects(values: list[Any]) -> AnyArray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class EntityStateCoder(Coder):
    """`EntityState` ⇄ bytes (format `VERSION`); see the module docstring."""

    def encode(self, state: EntityState) -> bytes:
        blobs: list[bytes] = []

        def array(values: AnyArray) -> dict[str, Any]:
            if values.dtype == object:
                return {"objects": [_plain(v) for v in values.tolist()]}
            data = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
            blobs.append(data.tobytes())
            return {"dtype": data.dtype.str, "shape": list(data.shape)}

        events = state.events
        header = {
            "emitted_until": int(state.emitted_until),
            "dirty_from": None if state.dirty_from is None else int(state.dirty_from),
            "last_label": int(state.last_label),
            "times": array(events.times),
            "event_ids": [str(i) for i in events.event_ids.tolist()],
            "columns": {name: array(col) for name, col in events.columns.items()},
            "base": {name: [_plain(v) for v in summary] for name, summary in state.base.items()},
        }
        encoded = json.dumps(header, separators=(",", ":")).encode()
        return _PREFIX.pack(VERSION, len(encoded)) + encoded + b"".join(blobs)

    def decode(self, encoded: bytes) -> EntityState:
        version, size = _PREFIX.unpack_from(encoded)
        if version != VERSION:
            msg = f"entity state written in format {version}; this job reads format {VERSION}"
            raise ValueError(msg)
        start = _PREFIX.size
        header = json.loads(encoded[start : start + size])
        offset = start + size

        def array(spec: dict[str, Any]) -> AnyArray:
            nonlocal offset
            if "objects" in spec:
                return _objects(spec["objects"])
            dtype = np.dtype(spec["dtype"])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            values = np.frombuffer(encoded, dtype=dtype, count=count, offset=offset)
            offset += count * dtype.itemsize
            native = values.astype(dtype.newbyteorder("="))
            return native.reshape(spec["shape"])

        times = array(header["times"]).astype(np.int64, copy=False)
        columns = {name: array(spec) for name, spec in header["columns"].items()}
        return EntityState(
            events=EventColumns(
                times=times, event_ids=_objects(header["event_ids"]), columns=columns
            ),
            base={name: tuple(values) for name, values in header["base"].items()},
            emitted_until=header["emitted_until"],
            dirty_from=header["dirty_from"],
            last_label=header["last_label"],
        )

    def is_deterministic(self) -> bool:
        return True
