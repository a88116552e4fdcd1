"""Redis commands packed in RESP, the protocol redis-py speaks, for many arguments.

A newer-wins script call carries about eleven arguments a row. redis-py packs a command
with `hiredis.pack_command` (or its Python serializer), which cost about as much as the
rest of the row's write. The writer packs its calls here instead: each argument's
framing (`\r\n$<length>\r\n`) is a dictionary look-up, and a call's headers and
arguments are joined at once, in C. A call packed here is sent with redis-py's own
`Connection.send_packed_command` and its reply read with its `read_response`.
`tests/unit/online/test_resp.py` pins the bytes to redis-py's packers.
"""

from __future__ import annotations

from collections.abc import Sequence

_CRLF = b"\r\n"


class _Heads(dict[int, bytes]):
    """The bulk string header of each length, made once, with the line end of the
    argument before it (`\r\n$<length>\r\n`)."""

    def __missing__(self, size: int) -> bytes:
        head = self[size] = b"\r\n$%d\r\n" % size
        return head


_HEADS = _Heads()


def command(args: Sequence[bytes]) -> bytes:
    """The command `args` (its name first), packed for `Connection.send_packed_command`.
    One join in C of the headers (looked up by length) and the arguments, interleaved
    by slice assignment."""
    parts = [b""] * (2 * len(args))
    parts[::2] = map(_HEADS.__getitem__, map(len, args))
    parts[1::2] = args
    return b"*%d" % len(args) + b"".join(parts) + _CRLF
