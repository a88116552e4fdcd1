"""`feature-store up | down | status | env`: the local emulator stack as plain processes."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from infra import stack
from infra.stack import ServiceStatus, StackError

if TYPE_CHECKING:
    from feature_store.config import PlatformConfig
    from jobs.cli import CliContext

_SERVICES = click.argument("services", nargs=-1, metavar="[SERVICE]...")


def _local_config(obj: CliContext) -> PlatformConfig:
    config = obj.config
    if not config.local:
        msg = f"the stack commands run local emulators; --project {config.project} is real GCP"
        raise click.UsageError(msg)
    return config


def _table(statuses: Sequence[ServiceStatus]) -> Table:
    table = Table()
    for column in ("service", "port", "pid", "state", "detail", "log"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        state = "[green]up[/green]" if s.healthy else "[red]down[/red]"
        pid = str(s.pid) if s.pid is not None else "-"
        table.add_row(s.name, str(s.port), pid, state, Text(s.detail), Text(str(s.log)))
    return table


@click.command()
@_SERVICES
@click.option(
    "--timeout",
    default=90.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds to wait for every service to answer.",
)
@click.pass_obj
def up(obj: CliContext, services: tuple[str, ...], timeout: float) -> None:
    """Start the local Pub/Sub, Bigtable, BigQuery and Redis (all, or the SERVICEs named).

    A service already answering on its port is reused, whoever started it.
    """
    try:
        statuses = stack.up(_local_config(obj), timeout, services or None)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    Console().print(_table(statuses))


@click.command()
@_SERVICES
@click.pass_obj
def down(obj: CliContext, services: tuple[str, ...]) -> None:
    """Stop the services `up` started (others are left running)."""
    try:
        stopped = stack.down(_local_config(obj), services or None)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")


@click.command()
@_SERVICES
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, services: tuple[str, ...], as_json: bool) -> None:
    """Whether each service answers a real request; exit code 1 if any does not."""
    try:
        statuses = stack.status(_local_config(ctx.obj), services or None)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        Console().print(_table(statuses))
    if not all(s.healthy for s in statuses):
        ctx.exit(1)


@click.command()
@click.pass_obj
def env(obj: CliContext) -> None:
    """Print `export` lines pointing a shell's Google clients at the emulators, and
    Feast (SDK, `feast` CLI) at the local Feast repo.

    Use as: eval "$(feature-store env)"
    """
    config = _local_config(obj)
    repo = str(config.feast_repo.resolve())
    # FEATURE_REPO_DIR_ENV_VAR is the `feast` CLI's own name for its --chdir option.
    variables = {**config.endpoints.env(), "FEATURE_STORE_FEAST_REPO": repo}
    variables["FEATURE_REPO_DIR_ENV_VAR"] = repo
    for name, value in variables.items():
        click.echo(f"export {name}={shlex.quote(value)}")


COMMANDS = [up, down, status, env]
