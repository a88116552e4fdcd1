"""The writer's packed calls are byte for byte what redis-py's own packers produce."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.connection import Connection, PythonRespSerializer

from online.resp import command

ARGS = st.lists(st.binary(max_size=300), max_size=40)


def python_packer(args: list[bytes]) -> bytes:
    """redis-py's pure-Python packer (what it uses without hiredis), one buffer."""
    packer = PythonRespSerializer(buffer_cutoff=6000, encode=lambda arg: arg)
    return b"".join(packer.pack(*args))


@given(ARGS)
def test_packed_commands_equal_redis_pys(args: list[bytes]) -> None:
    # (redis-py splits its first argument, the command's name, at spaces)
    call = [b"EVALSHA", *args]
    assert command(call) == python_packer(call)
    # the packer redis-py's connections use here (hiredis's, when installed)
    assert command(call) == b"".join(Connection().pack_command(*call))


def test_long_arguments_are_framed_with_their_length() -> None:
    arg = b"x" * 70_000
    assert command([b"EVALSHA", arg]) == b"*2\r\n$7\r\nEVALSHA\r\n$70000\r\n" + arg + b"\r\n"
    assert command([b"EVALSHA", arg]) == python_packer([b"EVALSHA", arg])
