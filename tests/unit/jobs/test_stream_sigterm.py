"""`feature-store stream` stops on SIGTERM as on Ctrl-C: the wait is interrupted, so the
job is cancelled and its summary printed; the previous handler comes back after."""

import os
import signal

import pytest

from jobs.stream import sigterm_as_interrupt


def test_sigterm_interrupts_the_wait_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.5)  # let the handler run
        pytest.fail("SIGTERM did not interrupt")
    assert signal.getsignal(signal.SIGTERM) is before
