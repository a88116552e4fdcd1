"""The simulated history a loop over the platform starts from (the loop test, the chaos
run): two days of traffic that end ten minutes before now, 2% of it delivered twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from simulator.traffic import SimulatedMessage, SimulationConfig, simulate


def two_days_of_history(
    now: datetime, *, seed: int, users: int, businesses: int, bad_share: float = 0.0
) -> list[SimulatedMessage]:
    """1,500 messages over the two days before `now` (less ten minutes)."""
    config = SimulationConfig(
        seed=seed,
        start=now - timedelta(days=2),
        duration=timedelta(days=2) - timedelta(minutes=10),
        events=1500,
        users=users,
        businesses=businesses,
        bad_share=bad_share,
        duplicate_share=0.02,
    )
    return list(simulate(config))
