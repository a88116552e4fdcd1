"""The sink overlaps a batch's write with building the next one, and keeps the writes in
order: a batch is sent only after the store answered the batch before, rows count as
taken only once their batch's answer came, and a failed answer fails the bundle with
nothing after it sent. A Redis write whose send failed is retried when its answer is
read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp

from common.metrics import local_counts, reset_local
from online.redis_writer import RedisOnlineWriter
from online.rows import EncodedRow, OnlineRow, RowEncoder
from online.sink import ROWS_TAKEN, OnlineStoreSpec, _WriteRowsFn
from online.write_support import OnlineStoreWriteError, RetryPolicy, WriteStats
from tests.unit.online.test_sink import REDIS, config
from tests.unit.online.views import user_view

VIEW = user_view("user_activity")
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


@dataclass
class FakeWrite:
    """Records when it is started and answered; fails its answer if told to."""

    batch: int
    users: list[str]
    log: list[tuple[str, int]]
    fail: bool = False

    def start(self) -> None:
        self.log.append(("start", self.batch))

    def result(self) -> WriteStats:
        self.log.append(("result", self.batch))
        if self.fail:
            msg = f"batch {self.batch} refused"
            raise OnlineStoreWriteError(msg)
        return WriteStats(store="redis", rows=len(self.users), written=len(self.users))

    def abandon(self) -> None:
        self.log.append(("abandon", self.batch))


@dataclass
class FakeWriter:
    store: str = "redis"
    log: list[tuple[str, int]] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)
    failing: frozenset[int] = frozenset()

    def prepare_encoded(self, rows: Sequence[EncodedRow]) -> FakeWrite:
        batch = len(self.batches) + 1
        users = [row.entity_key.decode("latin-1") for row in rows]
        self.batches.append(users)
        self.log.append(("prepare", batch))
        return FakeWrite(batch, users, self.log, fail=batch in self.failing)


def sink_with(writer: FakeWriter, batch_size: int) -> _WriteRowsFn:
    spec = OnlineStoreSpec.create(redis=REDIS, feature_views=[VIEW], batch_size=batch_size)
    fn = _WriteRowsFn(spec)
    fn._shared = SimpleNamespace(encoder=RowEncoder([VIEW]), writers={"redis": writer})  # type: ignore[assignment]
    return fn


def row(user: str, count: int = 1, at: datetime = T0) -> OnlineRow:
    return OnlineRow("user_activity", (["user_id"], [user]), {"review_count": count}, at)


def feed(fn: _WriteRowsFn, rows: Sequence[OnlineRow]) -> None:
    for r in rows:
        assert list(fn.process(r, Timestamp(0), GlobalWindow())) == []


def test_a_batch_is_sent_after_the_one_before_answered_and_built_before_that() -> None:
    reset_local()
    writer = FakeWriter()
    fn = sink_with(writer, batch_size=2)
    fn.start_bundle()
    feed(fn, [row("u1"), row("u2"), row("u3"), row("u4")])
    # Batch 2 is built while batch 1 is in flight; batch 1's answer is read before
    # batch 2 goes out; batch 2 is still in flight, its rows not yet taken.
    assert writer.log == [
        ("prepare", 1),
        ("start", 1),
        ("prepare", 2),
        ("result", 1),
        ("start", 2),
    ]
    assert local_counts().get(ROWS_TAKEN, 0) == 2
    feed(fn, [row("u5")])
    assert list(fn.finish_bundle()) == []
    assert writer.log[5:] == [("prepare", 3), ("result", 2), ("start", 3), ("result", 3)]
    assert local_counts().get(ROWS_TAKEN, 0) == 5
    assert local_counts().get("rows_written_redis", 0) == 5
    assert len(writer.batches) == 3 and sum(map(len, writer.batches)) == 5


def test_a_failed_answer_fails_the_bundle_and_sends_nothing_after_it() -> None:
    reset_local()
    writer = FakeWriter(failing=frozenset({1}))
    fn = sink_with(writer, batch_size=2)
    fn.start_bundle()
    feed(fn, [row("u1"), row("u2"), row("u3")])
    with pytest.raises(OnlineStoreWriteError, match="batch 1 refused"):
        feed(fn, [row("u4")])
    assert ("start", 2) not in writer.log
    assert local_counts().get(ROWS_TAKEN, 0) == 0
    assert local_counts().get("write_failures_redis", 0) == 1
    assert local_counts().get("rows_written_redis", 0) == 0
    # The runner retries the bundle on this instance: it starts clean.
    fn.start_bundle()
    feed(fn, [row("u1"), row("u2")])
    assert writer.log[-2:] == [("prepare", 3), ("start", 3)]


def test_a_bundle_left_in_flight_is_abandoned_when_the_next_starts() -> None:
    reset_local()
    writer = FakeWriter()
    fn = sink_with(writer, batch_size=1)
    fn.start_bundle()
    feed(fn, [row("u1")])
    fn.start_bundle()  # the runner gave up on the bundle without finishing it
    assert writer.log == [("prepare", 1), ("start", 1), ("abandon", 1)]
    assert local_counts().get(ROWS_TAKEN, 0) == 0


def test_rows_of_one_entity_in_later_batches_keep_their_order() -> None:
    reset_local()
    writer = FakeWriter()
    fn = sink_with(writer, batch_size=1)
    fn.start_bundle()
    second = timedelta(seconds=1)
    feed(fn, [row("u1", 1, T0), row("u1", 2, T0 + second), row("u1", 3, T0 - second)])
    list(fn.finish_bundle())
    starts = [batch for step, batch in writer.log if step == "start"]
    results = [batch for step, batch in writer.log if step == "result"]
    assert starts == results == [1, 2, 3]
    for batch in (2, 3):  # each start follows the answer before it
        assert writer.log.index(("result", batch - 1)) < writer.log.index(("start", batch))


def test_a_redis_write_whose_send_failed_is_retried_when_its_answer_is_read() -> None:
    fast = RetryPolicy(attempts=2, initial_backoff_s=0.01, max_backoff_s=0.01)
    unreachable = config({"type": "redis", "connection_string": "127.0.0.1:1"})
    writer = RedisOnlineWriter(unreachable, None, feature_views=[VIEW], retry=fast)
    encoder = RowEncoder([VIEW])
    first = writer.prepare_encoded(encoder.encode_all([row("u1")]))
    second = writer.prepare_encoded(encoder.encode_all([row("u2")]))
    first.start()  # the send fails: its answer says so, after the retries
    second.start()  # another caller's write (a worker's threads share the writer)
    with pytest.raises(RuntimeError, match="started already"):
        first.start()
    with pytest.raises(OnlineStoreWriteError, match=r"127\.0\.0\.1:1 failed after 2 attempts"):
        first.result()
    second.abandon()
