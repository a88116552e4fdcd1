"""Retry policy and write stats shared by the online writers."""

from __future__ import annotations

import pytest

from feature_store.errors import ConfigError
from online.write_support import (
    OnlineStoreWriteError,
    RetryPolicy,
    WriteStats,
    call_with_retry,
)


class Flaky:
    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def transient(err: BaseException) -> bool:
    return isinstance(err, ConnectionError)


def test_transient_errors_are_retried_with_growing_bounded_backoff() -> None:
    policy = RetryPolicy(attempts=5, initial_backoff_s=1.0, max_backoff_s=3.0, multiplier=2.0)
    slept: list[float] = []
    result, retries = call_with_retry(
        Flaky(3, ConnectionError("reset")),
        policy=policy,
        is_transient=transient,
        target="redis at h:1",
        sleep=slept.append,
    )
    assert (result, retries) == ("done", 3)
    ceilings = [1.0, 2.0, 3.0]
    assert all(c / 2 <= s <= c for s, c in zip(slept, ceilings, strict=True))


def test_last_transient_failure_names_the_target() -> None:
    flaky = Flaky(10, ConnectionError("refused"))
    with pytest.raises(OnlineStoreWriteError, match=r"redis at cache-1:6379 .* 3 attempts"):
        call_with_retry(
            flaky,
            policy=RetryPolicy(attempts=3),
            is_transient=transient,
            target="redis at cache-1:6379",
            sleep=lambda _: None,
        )
    assert flaky.calls == 3


def test_permanent_errors_are_not_retried() -> None:
    flaky = Flaky(1, ValueError("bad script"))
    with pytest.raises(OnlineStoreWriteError, match="bad script"):
        call_with_retry(
            flaky,
            policy=RetryPolicy(),
            is_transient=transient,
            target="t",
            sleep=lambda _: None,
        )
    assert flaky.calls == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"initial_backoff_s": 2.0, "max_backoff_s": 1.0}, {"multiplier": 0.5}],
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_stats_add_up_per_store() -> None:
    total = WriteStats(store="redis", rows=3, written=2, stale=1) + WriteStats(
        store="redis", rows=2, coalesced=1, written=1, retries=2
    )
    assert total == WriteStats(store="redis", rows=5, coalesced=1, written=3, stale=1, retries=2)
    with pytest.raises(ValueError, match="bigtable"):
        _ = total + WriteStats(store="bigtable")
