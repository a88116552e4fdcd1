"""Where the stream's online rows are compared with the offline values: at the event time
up to which the stream emitted every change point (a fired timer proves its watermark
passed it), taken at the first of the quiet polls; never at the wall clock after the
stream stopped, where a value may already have changed (an event leaving its 24 h
window) with no online row written.

The stream is the same state machine the streaming step runs (`WindowAggregator`: the
history settled at the job's start, then the change timers up to the watermark the job
had when it stopped); the expected values are counted off the definition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from common.inference.settings import BACK, SENT
from common.vectors import ROWS_UNCHANGED
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import WindowAggregator
from feature_store.events import to_micros
from feature_store.reference import REGISTRY
from jobs.stream import StreamProgress, rows_in_flight
from online.from_rows import ROWS_FOLDED
from online.sink import ROWS_TAKEN

PLAN = ViewPlan.build(REGISTRY, "user_activity")
DAY = timedelta(hours=24)
STOPPED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # the job's watermark when cancelled
STARTED = STOPPED - timedelta(minutes=2)
LOGINS = (
    STOPPED - DAY - timedelta(seconds=5),  # leaves the 24 h window 5 s before the stop
    STOPPED - DAY + timedelta(seconds=2),  # leaves it 2 s after: no timer fired for it
    STOPPED - timedelta(hours=1),
)


def _written(change_points: int) -> dict[str, int]:
    """Counts of a job whose writers took every row its stateful step handed out."""
    return {"change_points": change_points, ROWS_TAKEN: change_points}


def _login(i: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "event_type": "login",
        "event_time": to_micros(at),
        "user_id": "u1",
        "ip_hash": f"ip{i}",
        "country": "NL",
    }


def _logins_in_window(at: datetime) -> int:
    """The definition: logins with `at - 24 h < event_time <= at`."""
    return sum(at - DAY < t <= at for t in LOGINS)


def _stream_until(watermark: datetime) -> tuple[int, list[int]]:
    """The latest online login count the stream wrote, and the times its timers fired."""
    aggregator = WindowAggregator(PLAN)
    state = aggregator.new_state()
    aggregator.add(state, [_login(i, t) for i, t in enumerate(LOGINS)])
    rows = [aggregator.advance_to(state, "u1", to_micros(STARTED), settle=True)]
    fired = []
    while (nxt := aggregator.next_change(state)) is not None and nxt <= to_micros(watermark):
        fired.append(nxt)
        rows.append(aggregator.advance_to(state, "u1", nxt))
    latest = [batch for batch in rows if len(batch)][-1]
    return int(latest.values["login_count_24h"][-1]), fired


def test_the_rows_are_compared_where_the_stream_completed_them() -> None:
    online, fired = _stream_until(STOPPED)
    assert fired == [to_micros(LOGINS[0] + DAY)]
    progress = StreamProgress(quiet_polls=2)
    for _ in range(3):  # three quiet polls: nothing written, the watermark proven at 11:59:55
        progress.poll(_written(7), fired[-1])
    at = progress.complete_until()
    assert at == LOGINS[0] + DAY
    assert online == _logins_in_window(at) == 2
    # The wall clock a moment after the stop is past the second login's expiry, which the
    # stream never reached: its online row still counts it (the demo's flaky mismatch).
    wall_clock = STOPPED + timedelta(seconds=3)
    assert _logins_in_window(wall_clock) == 1 != online


def test_the_instant_is_taken_at_the_first_quiet_poll() -> None:
    """A timer that fires during the quiet polls may not have its rows written yet: the
    instant is the watermark proven at the first of them."""
    progress = StreamProgress(quiet_polls=2)
    progress.poll(_written(7), 100)
    progress.poll(_written(7), 200)
    progress.poll(_written(7), 300)
    assert progress.complete_until() == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=100
    )


def test_no_instant_while_rows_are_still_written_or_before_any_timer() -> None:
    progress = StreamProgress(quiet_polls=2)
    progress.poll(_written(7), 100)
    progress.poll(_written(8), 100)
    progress.poll(_written(8), 100)
    assert not progress.caught_up()
    assert progress.complete_until() is None
    progress.poll(_written(8), 100)
    assert progress.caught_up()
    assert progress.complete_until() is not None

    idle = StreamProgress(quiet_polls=2)
    for _ in range(3):
        idle.poll({"events_received": 0}, None)
    assert idle.caught_up()
    assert idle.complete_until() is None


def test_not_caught_up_while_records_wait_in_the_model_stage() -> None:
    """A record waiting for its models holds no watermark locally: quiet counters and a
    proven watermark say nothing while the model stage still holds records."""
    progress = StreamProgress(quiet_polls=2)
    for _ in range(3):
        progress.poll({**_written(7), SENT: 5, BACK: 4}, 100)
    assert not progress.caught_up()
    assert progress.complete_until() is None
    for _ in range(3):
        progress.poll({**_written(9), SENT: 5, BACK: 5}, 300)
    assert progress.caught_up()
    assert progress.complete_until() == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=300
    )


def test_not_caught_up_while_rows_wait_for_the_writers() -> None:
    """Rows between the stateful step and the stores (a kernel stage compiling, a write
    under way) move no counter: quiet polls then say nothing. Under load a live row that
    corrected a warm-start one waited there past five quiet seconds, the job was stopped
    at that instant, and the online store kept the warm start's value."""
    handed = {"change_points": 84, "change_points_from_timers": 6}
    waiting = {**handed, ROWS_UNCHANGED: 2, ROWS_FOLDED: 30, ROWS_TAKEN: 28}
    assert rows_in_flight(waiting) == 84 + 6 - 2 - 30 - 28 == 30
    progress = StreamProgress(quiet_polls=2)
    for _ in range(4):
        progress.poll(waiting, 100)
    assert not progress.caught_up()
    assert progress.complete_until() is None
    done = {**waiting, ROWS_TAKEN: 58}
    assert rows_in_flight(done) == 0
    for _ in range(3):
        progress.poll(done, 200)
    assert progress.caught_up()
    assert progress.complete_until() == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=200
    )
