"""`jobs.runner.make_pipeline` keeps Beam's local runner from dropping worker input:
the streams that feed SDK worker processes (`multi_processing`) flush by size only, so
every byte the runner writes reaches the worker, even when a flush waits on a full send
queue while the runner goes on writing."""

from __future__ import annotations

import time

from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.runners.worker import data_plane

from jobs.backfill import TWO_WORKERS
from jobs.runner import make_pipeline


def test_worker_input_streams_flush_by_size_only() -> None:
    make_pipeline(TWO_WORKERS)
    # as Beam's GrpcServer builds the runner's data service for its worker processes
    servicer = data_plane.BeamFnDataServicer(worker_handlers.DATA_BUFFER_TIME_LIMIT_MS)
    stream = servicer.get_conn_by_worker_id("worker-1").output_stream("bundle-1", "read")
    assert not isinstance(stream, data_plane.TimeBasedBufferingClosableOutputStream)
    stream.close()


def test_every_byte_written_for_a_worker_is_sent() -> None:
    """Writes for 2.5 s (past Beam's 1 s timed flush, were it on) while each flush
    waits 50 ms, as on a full send queue; what was sent must be all that was written."""
    make_pipeline(TWO_WORKERS)
    sent: list[int] = []

    def send(data: bytes) -> None:
        time.sleep(0.05)
        sent.append(len(data))

    # what the runner's data channel makes for each bundle's input (`output_stream`)
    stream = data_plane.ClosableOutputStream.create(
        send, send, worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
    )
    chunk = b"x" * 4096
    written = 0
    until = time.monotonic() + 2.5
    while time.monotonic() < until:
        stream.write(chunk)
        written += len(chunk)
        stream.maybe_flush()
    stream.close()
    assert sum(sent) == written
