"""The demo publishes no faster than its job reads: `_Pace.wait` blocks while the job has
read `MAX_UNREAD` fewer messages than were sent, or holds `MAX_UNREAD` records in its model
stage, and lets go once it moves on; a job that makes no progress for `PACE_PATIENCE_S` no
longer holds the publisher back."""

import threading
import time

import pytest

from common.inference.settings import BACK, SENT
from common.metrics import JobCounter, local_counts, reset_local
from jobs import demo


@pytest.fixture(autouse=True)
def _fresh_counts():
    reset_local()
    yield
    reset_local()


def test_it_waits_for_the_job_to_read() -> None:
    received = JobCounter("stream", "events_received")
    received.inc(10)
    pace = demo._Pace()
    pace.wait(10 + demo.MAX_UNREAD - 1)  # within the allowance: returns at once
    released = threading.Event()

    def publish() -> None:
        pace.wait(10 + demo.MAX_UNREAD)
        released.set()

    threading.Thread(target=publish, daemon=True).start()
    assert not released.wait(0.5)  # one too many unread: held back
    received.inc(1)
    assert released.wait(5)
    assert local_counts()["events_received"] == 11


def test_it_waits_for_the_models_to_give_records_back() -> None:
    JobCounter("stream", "events_received").inc(10)
    sent, back = JobCounter("models", SENT), JobCounter("models", BACK)
    sent.inc(demo.MAX_UNREAD)
    pace = demo._Pace()
    released = threading.Event()
    threading.Thread(target=lambda: (pace.wait(10), released.set()), daemon=True).start()
    assert not released.wait(0.5)  # every message read, but the models hold too many
    back.inc(1)
    assert released.wait(5)


def test_a_job_that_reads_nothing_does_not_stop_the_demo(monkeypatch) -> None:
    monkeypatch.setattr(demo, "PACE_PATIENCE_S", 0.3)
    pace = demo._Pace()
    began = time.monotonic()
    pace.wait(demo.MAX_UNREAD)
    assert 0.3 <= time.monotonic() - began < 5
    began = time.monotonic()
    for sent in range(demo.MAX_UNREAD, demo.MAX_UNREAD + 50):  # no more waiting per message
        pace.wait(sent)
    assert time.monotonic() - began < 0.3
    JobCounter("stream", "events_received").inc()  # it reads again: paced again
    released = threading.Event()
    threading.Thread(
        target=lambda: (pace.wait(demo.MAX_UNREAD + 50), released.set()), daemon=True
    ).start()
    assert not released.wait(0.1)
