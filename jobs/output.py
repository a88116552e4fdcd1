"""How commands talk to people: human summaries and tables by default (readable at 100
columns: long names wrap, never truncated), `--json` for machines, and progress bars
on stderr for the jobs that take a while."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console, JustifyMethod
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

T = TypeVar("T")
console = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (for machines)."
)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(*columns: str, title: str | None = None, numeric: Sequence[str] = ()) -> Table:
    """A table whose cells and headers wrap (fold) rather than being cut with `…`; the
    first column (the names) is never wrapped, the others give way."""
    out = Table(
        title=title,
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        min_width=len(title) if title else None,
    )
    for i, name in enumerate(columns):
        justify: JustifyMethod = "right" if name in numeric else "left"
        out.add_column(name, overflow="fold", justify=justify, no_wrap=i == 0)
    return out


def fmt(value: Any) -> str:
    """A number with thousands separators, a float to 6 significant digits, None as -."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e15 else f"{value:.6g}"
    return str(value)


def pairs(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column `what | value` table."""
    out = table("", "", title=title, numeric=("",))
    out.show_header = False
    out.columns[1].justify = "right"
    for name, value in rows:
        out.add_row(name, fmt(value))
    return out


def counters(title: str, values: Mapping[str, Any]) -> Table:
    """Counters as `counter | value`, sorted by name."""
    out = table("counter", "value", title=title, numeric=("value",))
    for name, value in sorted(values.items()):
        out.add_row(name, fmt(value))
    return out


def run_with_progress(
    label: str,
    work: Callable[[], T],
    *,
    total: int | None,
    counted: Sequence[str] = ("events_valid", "events_invalid"),
) -> T:
    """Runs `work` (a local Beam job) in a thread and shows how many events its
    validation stage has seen (the process-local mirror of its counters) on stderr."""
    from common.metrics import local_counts, reset_local

    reset_local()
    done: list[T] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            done.append(work())
        except BaseException as exc:  # re-raised in the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=target, name=label, daemon=True)
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn() if total else TextColumn("{task.completed:,} events"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task(label, total=total)
        worker.start()
        while worker.is_alive():
            worker.join(timeout=0.25)
            counts = local_counts()
            progress.update(task, completed=sum(counts.get(c, 0) for c in counted))
    if failed:
        raise failed[0]
    stderr.print(f"{label}: done in {progress.tasks[0].elapsed or 0:.1f} s")
    return done[0]


def count_lines(paths: Iterable[str]) -> int | None:
    """Lines in the JSON-lines event files named (files or folders), or None when any
    is not JSON lines (then the bar has no total)."""
    from pathlib import Path

    total = 0
    for name in paths:
        path = Path(name)
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        for file in files:
            if file.suffix != ".jsonl" or not file.is_file():
                return None
            with file.open("rb") as handle:
                total += sum(1 for _ in handle)
    return total or None
