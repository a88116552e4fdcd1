"""`feature-store demo`."""

from __future__ import annotations

import click

from jobs.cli import CliContext
from jobs.model_options import model_options, model_settings


@click.command()
@click.option("--history-events", default=20_000, show_default=True)
@click.option("--live-seconds", default=60.0, show_default=True)
@click.option("--live-rate", default=40.0, show_default=True, help="Messages per second.")
# Both models, on 2% of the users: the model views with a few live reviews each.
@model_options(default_sample=0.02)
@click.pass_obj
def demo(
    ctx: CliContext,
    history_events: int,
    live_seconds: float,
    live_rate: float,
    models: str,
    model_sample: float,
) -> None:
    """Run the whole platform locally: up, apply, backfill, stream, read through Feast."""
    from jobs.demo import DemoSettings, run_demo

    settings = DemoSettings(
        history_events=history_events,
        live_seconds=live_seconds,
        live_rate=live_rate,
        models=model_settings(models, model_sample),
    )
    raise SystemExit(run_demo(ctx.config, ctx.registry, settings))


COMMANDS = [demo]
