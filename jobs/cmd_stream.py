"""`feature-store stream`."""

from __future__ import annotations

import click

from jobs import summaries
from jobs.cli import CliContext
from jobs.model_options import model_options, model_settings
from jobs.output import console, json_option, print_json


@click.command()
@click.option(
    "--duration", type=float, help="Run this many seconds, then stop (default: until Ctrl-C)."
)
@click.option(
    "--allowed-lateness",
    default=300.0,
    show_default=True,
    help="Seconds an event may trail what its key has seen and still be exact.",
)
@click.option(
    "--dedup-ttl",
    default=24 * 3600,
    show_default=True,
    help="Seconds an event_id is remembered for de-duplication.",
)
@click.option("--views", default="", help="Comma-separated views (default: every view).")
@click.option("--no-archive", is_flag=True, help="Do not write received events to the archive.")
@click.option(
    "--no-warm-start",
    is_flag=True,
    help="Start with empty state instead of reading history from the archive.",
)
@model_options()
@json_option
@click.argument("pipeline_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def stream(
    ctx: CliContext,
    as_json: bool,
    duration: float | None,
    allowed_lateness: float,
    dedup_ttl: int,
    views: str,
    no_archive: bool,
    no_warm_start: bool,
    models: str,
    model_sample: float,
    pipeline_args: tuple[str, ...],
) -> None:
    """Run the streaming job: Pub/Sub → exact windows → Redis and Bigtable.

    Extra arguments after `--` go to Beam (e.g. `-- --runner DataflowRunner ...`).
    """
    from jobs.stream import StreamSettings, run_stream
    from jobs.watch import JobFailedError

    if allowed_lateness < 0:
        msg = f"--allowed-lateness must be >= 0, got {allowed_lateness}"
        raise click.BadParameter(msg)
    settings = StreamSettings(
        allowed_lateness_s=allowed_lateness,
        dedup_ttl_s=dedup_ttl,
        views=tuple(v for v in views.split(",") if v),
        archive=not no_archive,
        warm_start=not no_warm_start,
        models=model_settings(models, model_sample),
    )
    try:
        summary = run_stream(
            ctx.config, ctx.registry, settings, duration_s=duration, pipeline_args=pipeline_args
        )
    except JobFailedError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        print_json(
            {
                "ran_s": round(summary.ran_s, 1),
                "reconciliation": summary.reconciliation,
                "counters": summary.counters,
                "distributions": summary.distributions,
                "skipped_views": summary.skipped_views,
            }
        )
        return
    console.print(
        summaries.stream(
            summary.ran_s, summary.counters, summary.distributions, summary.skipped_views
        )
    )
    r = summary.reconciliation
    console.print(
        f"received {r['received']} = valid {r['valid']} + invalid {r['invalid']} + duplicates "
        f"{r['duplicates']} ({'balanced' if r['balanced'] else 'NOT balanced'}); apart: late "
        f"{r['late']}, rejected {r['rejected']}, invalid in history {r['history_invalid']}",
        markup=False,
    )


COMMANDS = [stream]
