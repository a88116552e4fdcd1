"""The benchmark report: a rich table on the terminal and BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from rich.console import Console
from rich.table import Table

from bench.harness import Goal, Row, Section, benchmark_name

NOTES = Path(__file__).resolve().parent / "notes"
"""Per benchmark, findings of earlier runs worth keeping across regenerations (profiles,
instruction counts, before/after comparisons no single run can remake)."""
HEADER = ("system", "what ran", "events", "wall s", "events/s", "time vs ref", "check")
CPU = "CPU s per M events"  # a column of the groups whose rows measured their CPU time
NUMERIC = frozenset({"events", "wall s", "events/s", "time vs ref", CPU})


def header(rows: Sequence[Row]) -> tuple[str, ...]:
    if any(r.cpu_s is not None for r in rows):
        return (*HEADER[:-1], CPU, HEADER[-1])
    return HEADER


def _ratio(row: Row, rows: Sequence[Row]) -> str:
    reference = next(
        (r for r in rows if r.group == row.group and r.reference and r.benchmark == row.benchmark),
        None,
    )
    if row.wall_s is None or reference is None or not reference.wall_s:
        return ""
    if row is reference:
        return "1.00 (ref)"
    return f"{row.wall_s / reference.wall_s:.2f}×"


def cells(row: Row, rows: Sequence[Row], cpu: bool = False) -> tuple[str, ...]:
    rate = row.events_per_s
    per_million = row.cpu_s_per_million
    return (
        row.system,
        row.variant,
        f"{row.events:,}",
        "—" if row.wall_s is None else f"{row.wall_s:.2f}",
        "—" if rate is None else f"{rate:,.0f}",
        _ratio(row, rows),
        *(("—" if per_million is None else f"{per_million:.1f}",) if cpu else ()),
        row.check,
    )


def _groups(rows: Sequence[Row]) -> list[tuple[str, str, list[Row]]]:
    """(benchmark, group, its rows) in the order the rows came."""
    keys = dict.fromkeys((r.benchmark, r.group) for r in rows)
    return [(b, g, [r for r in rows if (r.benchmark, r.group) == (b, g)]) for b, g in keys]


def print_table(rows: Sequence[Row], console: Console) -> None:
    for benchmark, group, members in _groups(rows):
        table = Table(title=f"{benchmark}: {group}", title_justify="left")
        columns = header(members)
        for name in columns:
            table.add_column(name, justify="right" if name in NUMERIC else "left", overflow="fold")
        for row in members:
            table.add_row(*cells(row, rows, CPU in columns))
        console.print(table)


def _verdict(goal: Goal) -> str:
    return "met" if goal.met else "NOT met"


def print_goals(goals: Sequence[Goal], console: Console) -> None:
    if not goals:
        return
    table = Table(title="goals", title_justify="left")
    for name in ("benchmark", "goal", "this run", "verdict"):
        table.add_column(name, overflow="fold")
    for g in goals:
        table.add_row(g.benchmark, g.goal, g.measured, _verdict(g))
    console.print(table)


def goals_markdown(goals: Sequence[Goal]) -> str:
    """The goals the run checked, each with its verdict from the run's own figures."""
    lines = ["| benchmark | goal | this run | verdict |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {g.benchmark} | {_escape(g.goal)} | {_escape(g.measured)} | "
        f"{_verdict(g) if g.met else f'**{_verdict(g)}**'} |"
        for g in goals
    ]
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_table(rows: Sequence[Row], all_rows: Sequence[Row]) -> str:
    columns = header(rows)
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---:" if h in NUMERIC else "---" for h in columns) + " |",
    ]
    lines += [
        "| " + " | ".join(_escape(c) for c in cells(r, all_rows, CPU in columns)) + " |"
        for r in rows
    ]
    return "\n".join(lines)


def markdown(
    modules: Sequence[ModuleType],
    rows: Sequence[Row],
    sections: Sequence[Section],
    facts: dict[str, str],
    command: str,
    goals: Sequence[Goal] = (),
) -> str:
    parts = [
        "# Benchmarks",
        f"Written by `{command}` from one run on one machine: the figures of a table "
        "come from the same data in the same run. Regenerate rather than edit. "
        "Wall times are seconds of one cold run each (no warm-up is excluded unless a row "
        "says so); events/s is the events given to the row divided by its wall time; "
        "\"time vs ref\" is the row's wall time over the group's reference row's; "
        '"CPU s per M events", where a group has it, is the process CPU time (user + '
        "system, worker processes included) of the row's run per million events.",
        "## Machine",
        "| | |\n| --- | --- |\n" + "\n".join(f"| {k} | {_escape(v)} |" for k, v in facts.items()),
    ]
    if goals:
        parts += [
            "## Goals",
            "Each target the project set itself, checked against this run's own figures "
            "(the sections below say how each was measured).",
            goals_markdown(goals),
        ]
    for module in modules:
        name = benchmark_name(module)
        doc = (module.__doc__ or "").strip()
        parts.append(f"## {name}")
        if doc:
            parts.append(doc)
        for benchmark, group, members in _groups(rows):
            if benchmark == name:
                parts += [f"**{group}**", _markdown_table(members, rows)]
        parts += [f"### {s.title}\n\n{s.markdown}" for s in sections if s.benchmark == name]
        notes = NOTES / f"{name}.md"
        if notes.exists():
            parts += [
                "### Notes from earlier runs\n\nKept by hand in "
                f"`bench/notes/{name}.md`, not measured by this run: each names its own run "
                "and machine.\n\n" + notes.read_text(encoding="utf-8").strip()
            ]
    return "\n\n".join(parts) + "\n"
