"""The traffic simulator's own speed: how long making the benchmarks' (and the demo's)
input takes.

Work: `simulator.traffic.simulate` of N messages (N = 100,000 and 1,000,000; quick:
20,000) over 20,000 users and 2,000 businesses, with 2% malformed, 1% re-delivered and
1% late messages, consumed as the publisher and `write_jsonl` consume it (every message
rendered to bytes). The check counts the messages and the malformed ones.
"""

from __future__ import annotations

import logging

from bench.harness import Context, Row, timed
from simulator.traffic import SimulationConfig, simulate

log = logging.getLogger(__name__)

SIZES = ((100_000, 1_000_000), (20_000,))  # full, quick
GROUP = "simulated messages"


def run(ctx: Context) -> list[Row]:
    sizes = (ctx.events,) if ctx.events else SIZES[1] if ctx.quick else SIZES[0]
    rows = []
    for n in sizes:
        config = SimulationConfig(
            seed=ctx.seed,
            events=n,
            users=20_000,
            businesses=2_000,
            bad_share=0.02,
            duplicate_share=0.01,
            late_share=0.01,
        )
        with timed() as took:
            count = bad = 0
            for message in simulate(config):
                count += 1
                bad += message.defect is not None
        wall = took()
        log.info("simulated %d messages in %.2f s", n, wall)
        want_bad = round(n * config.bad_share)
        ok = count == n and bad == want_bad
        rows.append(
            Row(
                benchmark="simulator",
                group=f"{GROUP}: {n:,}",
                system="feature-store",
                variant="simulate(), every message rendered",
                events=n,
                wall_s=wall,
                reference=True,
                check=("" if ok else "FAILED: ")
                + f"{count:,} messages of {n:,}, {bad:,} malformed of {want_bad:,}",
            )
        )
    return rows
