"""Redis commands packed in RESP, the protocol redis-py speaks, for many arguments.

A newer-wins script call carries about eleven arguments a row. redis-py packs a command
with `hiredis.pack_command` (or its Python serializer), which cost about as much as the
rest of the row's write. The writer packs its calls here instead: each argument's
framing (`$<length>\r\n`) is a dictionary look-up and one concatenation, and the
arguments are joined once per call. A call packed here is sent with redis-py's own
`Connection.send_packed_command` and its reply read with its `read_response`.
`tests/unit/online/test_resp.py` pins the bytes to redis-py's packers.
"""

from __future__ import annotations

from collections.abc import Sequence

_CRLF = b"\r\n"


class _Heads(dict[int, bytes]):
    """The bulk string header of each length, made once."""

    def __missing__(self, size: int) -> bytes:
        head = self[size] = b"$%d\r\n" % size
        return head


_HEADS = _Heads()


def command(args: Sequence[bytes]) -> bytes:
    """The command `args` (its name first), packed for `Connection.send_packed_command`."""
    heads = _HEADS
    framed = _CRLF.join([heads[len(arg)] + arg for arg in args])
    return b"*%d\r\n" % len(args) + framed + _CRLF
