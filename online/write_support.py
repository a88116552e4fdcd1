"""What every online-store writer shares: its stats, its errors and its retry policy."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from feature_store.errors import ConfigError, FeatureStoreError
from online.rows import EncodedRow, OnlineRow

logger = logging.getLogger(__name__)

T = TypeVar("T")


class OnlineStoreWriteError(FeatureStoreError):
    """Rows could not be written to an online store (after the retries, if transient)."""


@dataclass(frozen=True, kw_only=True)
class WriteStats:
    """What one `write` call did.

    `rows` came in; `coalesced` of them were dropped because a newer row for the same
    (view, entity) was in the same call; `written` rows were applied; `stale` rows were
    older than what the store already held and left it untouched (Redis tells; Bigtable
    keeps older cells as older versions, so it always reports 0); `retries` counts the
    transient failures that were retried.
    """

    store: str
    rows: int = 0
    coalesced: int = 0
    written: int = 0
    stale: int = 0
    retries: int = 0

    def __add__(self, other: WriteStats) -> WriteStats:
        if other.store != self.store:
            msg = f"cannot add write stats of store `{other.store}` to `{self.store}`"
            raise ValueError(msg)
        return WriteStats(
            store=self.store,
            rows=self.rows + other.rows,
            coalesced=self.coalesced + other.coalesced,
            written=self.written + other.written,
            stale=self.stale + other.stale,
            retries=self.retries + other.retries,
        )


class PreparedWrite(Protocol):
    """One write, built and not yet sent: `start` sends it, `result` waits for the
    store's answer (retrying transient failures) and says what it did, or raises
    `OnlineStoreWriteError`; `abandon` drops a started write whose answer nobody will
    read. A caller that starts each write after the `result` of the one before gets
    its writes to the store in order (the sink does)."""

    def start(self) -> None: ...

    def result(self) -> WriteStats: ...

    def abandon(self) -> None: ...


class OnlineWriter(Protocol):
    """The interface the streaming job and the backfill hand their rows to."""

    store: str

    def write(self, rows: Sequence[OnlineRow]) -> WriteStats: ...

    def write_encoded(self, rows: Sequence[EncodedRow]) -> WriteStats: ...

    def prepare_encoded(self, rows: Sequence[EncodedRow]) -> PreparedWrite:
        """The write of `rows`, built (the client's work done) but not sent: the
        sink builds a batch's write while the store still works on the batch before."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DeferredWrite:
    """A `PreparedWrite` of a writer that cannot overlap: `result` runs the write."""

    write: Callable[[], WriteStats]

    def start(self) -> None:
        pass

    def result(self) -> WriteStats:
        return self.write()

    def abandon(self) -> None:
        pass


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter for transient store errors."""

    attempts: int = 5
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            msg = f"retry attempts must be at least 1, got {self.attempts}"
            raise ConfigError(msg)
        if self.initial_backoff_s < 0 or self.max_backoff_s < self.initial_backoff_s:
            msg = (
                f"retry backoff must satisfy 0 <= initial <= max, got "
                f"initial={self.initial_backoff_s} max={self.max_backoff_s}"
            )
            raise ConfigError(msg)
        if self.multiplier < 1:
            msg = f"retry multiplier must be at least 1, got {self.multiplier}"
            raise ConfigError(msg)

    def backoff_s(self, retry: int) -> float:
        """Delay before retry number `retry` (0-based): half fixed, half random."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**retry)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    target: str,
    sleep: Callable[[float], None] = time.sleep,
    first_attempt: Callable[[], T] | None = None,
) -> tuple[T, int]:
    """Run `fn`, retrying transient failures; return its result and the retry count.

    `first_attempt`, if given, is the first attempt instead of `fn` (e.g. reading the
    answer to a request already sent); the retries run `fn`. A permanent failure, or a
    transient one on the last attempt, raises `OnlineStoreWriteError` naming `target`
    (the store and host or table).
    """
    for attempt in range(policy.attempts):
        try:
            if attempt == 0 and first_attempt is not None:
                return first_attempt(), attempt
            return fn(), attempt
        except Exception as err:
            if not is_transient(err):
                msg = f"writing to {target} failed: {err}"
                raise OnlineStoreWriteError(msg) from err
            if attempt + 1 == policy.attempts:
                msg = f"writing to {target} failed after {policy.attempts} attempts: {err}"
                raise OnlineStoreWriteError(msg) from err
            delay = policy.backoff_s(attempt)
            logger.warning(
                "transient error writing to %s (attempt %d of %d), retrying in %.2fs: %s",
                target,
                attempt + 1,
                policy.attempts,
                delay,
                err,
            )
            sleep(delay)
    msg = f"retry policy for {target} allowed no attempt"
    raise OnlineStoreWriteError(msg)
