"""The batch readers' message blocks: every line once, in ranges cut anywhere, and the
batched validation gives what the per-message one gives."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from common.archive_read import ReadEventFiles, discover, file_ranges, in_blocks, read_blocks
from common.transforms import DEAD_LETTER, ValidateEvents

LINES = [b'{"a": 1}', b"", b"not json", b'{"b": "\xc3\xa9t\xc3\xa9"}', b"x" * 300, b"last"]


def _write(path: Path, lines: list[bytes], ending: bytes = b"\n", final: bool = True) -> None:
    data = ending.join(lines) + (ending if final else b"")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _read_all(path: Path, range_bytes: int) -> list[bytes]:
    files = discover([str(path)], ["user-events"])
    out = []
    for part in file_ranges(files, range_bytes):
        for block in read_blocks(part, block_lines=2):
            assert 1 <= len(block) <= 2
            out += [raw for topic, raw, attributes in block if topic == "user-events"]
    return out


@pytest.mark.parametrize("range_bytes", [1, 2, 3, 7, 8, 9, 50, 10_000])
@pytest.mark.parametrize(("ending", "final"), [(b"\n", True), (b"\r\n", True), (b"\n", False)])
def test_every_line_once_in_order_wherever_the_ranges_cut(
    tmp_path: Path, range_bytes: int, ending: bytes, final: bool
) -> None:
    path = tmp_path / "user-events.jsonl"
    _write(path, LINES, ending, final)
    assert _read_all(path, range_bytes) == LINES


def test_a_compressed_file_is_one_range(tmp_path: Path) -> None:
    path = tmp_path / "user-events.jsonl.gz"
    _write(path, LINES)
    files = discover([str(path)], ["user-events"])
    assert len(file_ranges(files, 1)) == 1
    assert _read_all(path, 1) == LINES


def test_in_blocks_keeps_order_and_sizes() -> None:
    assert list(in_blocks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(in_blocks([], 3)) == []


def _body(event_id: str, event_time: str = "2024-03-01T12:00:00Z") -> bytes:
    event = {"event_id": event_id, "event_type": "login", "event_time": event_time}
    return json.dumps({**event, "user_id": "u-1"}).encode()


def test_batched_validation_equals_the_per_message_one(tmp_path: Path) -> None:
    bodies = [_body(f"ok-{i}") for i in range(5)] + [b"{", _body("ahead", "2024-03-01T13:00:00Z")]
    path = tmp_path / "user-events.jsonl"
    _write(path, bodies)
    files = discover([str(path)], ["user-events"])
    received = {"received_us": 1_709_294_400_000_000}  # 2024-03-01T12:00:00Z
    with TestPipeline() as p:
        single = p | "Lines" >> ReadEventFiles(files) | "One" >> ValidateEvents("test", **received)
        blocks = (
            p
            | "Blocks" >> ReadEventFiles(files, block_lines=3, range_bytes=40)
            | "Many" >> ValidateEvents("test", batched=True, **received)
        )
        flat = blocks.valid | "Flatten" >> beam.FlatMap(lambda records: records)
        ids = [f"ok-{i}" for i in range(5)]
        assert_that(
            single.valid | "IdsOne" >> beam.Map(lambda r: r["event_id"]), equal_to(ids), "One"
        )
        assert_that(flat | "IdsMany" >> beam.Map(lambda r: r["event_id"]), equal_to(ids), "Many")
        reasons = ["not_json", "timestamp_out_of_range"]
        for name, out in (("One", single), ("Many", blocks)):
            got = out[DEAD_LETTER] | f"Reasons{name}" >> beam.Map(lambda d: str(d.reason))
            assert_that(got, equal_to(reasons), label=f"Dead{name}")
