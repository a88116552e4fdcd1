"""`feature-store apply`, `plan` and `features`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from jobs import output
from jobs.cli import CliContext

if TYPE_CHECKING:
    from feature_store.resources import Change

console = Console()


def _print_changes(changes: Sequence[Change], title: str) -> None:
    table = output.table("", "kind", "name", "action", title=title)
    marks = {"create": "[green]+", "update": "[yellow]~", "delete": "[red]-", "exists": "[dim]="}
    for change in changes:
        table.add_row(
            marks.get(change.action, "?"),
            change.kind,
            change.name,
            change.action,
        )
    console.print(table)


@click.command()
@click.pass_obj
def plan(ctx: CliContext) -> None:
    """Print what `apply` would create or change (changes nothing)."""
    from jobs.provision import feast_changes, infrastructure_changes

    changes = infrastructure_changes(ctx.config, ctx.registry, apply=False)
    changes += feast_changes(ctx.config, ctx.registry, apply=False)
    _print_changes(changes, "plan")
    pending = [c for c in changes if c.action != "exists"]
    console.print(f"{len(pending)} to change, {len(changes) - len(pending)} in place")


@click.command()
@click.pass_obj
def apply(ctx: CliContext) -> None:
    """Create topics, subscriptions, tables and the Feast registry (idempotent)."""
    from jobs.provision import feast_changes, infrastructure_changes

    changes = infrastructure_changes(ctx.config, ctx.registry, apply=True)
    changes += feast_changes(ctx.config, ctx.registry, apply=True)
    _print_changes(changes, "apply")
    created = sum(c.action != "exists" for c in changes)
    console.print(
        f"applied: {created} created or updated, {len(changes) - created} already in place"
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def features(ctx: CliContext, as_json: bool) -> None:
    """List the feature views and features registered in Feast, with their types."""
    from jobs.provision import feature_store

    fs = feature_store(ctx.config)
    listing: dict[str, dict[str, Any]] = {
        fv.name: {
            "entities": [e.name for e in fv.entity_columns],
            "features": {f.name: str(f.dtype) for f in fv.features},
        }
        for fv in sorted(fs.list_feature_views(), key=lambda v: v.name)
    }
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    table = output.table(
        "view", "entity", "feature", "type", title=f"Feast project {ctx.config.feast_project}"
    )
    for name, info in listing.items():
        for feature, dtype in info["features"].items():
            table.add_row(name, ",".join(info["entities"]), feature, dtype)
    console.print(table)


COMMANDS = [plan, apply, features]
