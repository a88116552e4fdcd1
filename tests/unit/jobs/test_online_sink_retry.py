"""The jobs' online writers ride out a store restart instead of failing the stream.

Found by `make chaos`: with 5 attempts (1.5 to 3 s of backoff) a Redis stopped for 20 s
failed every attempt of a bundle, and the local runner, after 4 attempts of the bundle,
failed the streaming job."""

from __future__ import annotations

import pytest

from jobs.online_sink import JOB_RETRY
from online import write_support

OUTAGE_S = 20.0


def test_the_jobs_retry_outlasts_a_20_s_store_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    # The least each delay can be: its fixed half, with no random part.
    monkeypatch.setattr(write_support.random, "uniform", lambda lo, hi: lo)
    least = sum(JOB_RETRY.backoff_s(i) for i in range(JOB_RETRY.attempts - 1))
    assert least == pytest.approx((0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 6.4 + 10 + 10 + 10) / 2)
    assert least > OUTAGE_S


def test_the_jobs_retry_still_ends() -> None:
    most = sum(min(10.0, 0.2 * 2**i) for i in range(JOB_RETRY.attempts - 1))
    assert most < 60
