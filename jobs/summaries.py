"""Human renderings of what the commands and the demo return (tables fit 100 columns)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType

from jobs.output import counters, fmt, pairs, table

ENTITY_WIDTH = 72  # columns left for entities in `get` at 100, beside the feature names


def backfill(summary: Mapping[str, Any]) -> RenderableType:
    head = pairs(
        "backfill",
        [
            ("events read", summary["events_read"]),
            ("invalid (dead letters)", summary["invalid"]),
            ("duplicates dropped", summary["duplicates"]),
            ("change points", summary["change_points"]),
            ("as of", f"{str(summary['as_of'])[:19]} UTC"),
            ("seconds", summary["elapsed_s"]),
            ("events per second", summary["events_per_s"]),
            *_workers(summary.get("local_workers")),
        ],
    )
    views = table("view", "rows into BigQuery", numeric=("rows into BigQuery",))
    for view, n in sorted(summary["rows_written"].items()):
        views.add_row(view, fmt(n))
    stores = table("online store", "rows written", numeric=("rows written",))
    for store, n in sorted(summary["online_rows"].items()):
        stores.add_row(store, fmt(n))
    parts: list[RenderableType] = [head, "", views]
    if summary["online_rows"]:
        parts += ["", stores]
    parts += _skipped(summary.get("skipped_views") or {})
    if summary.get("dead_letters"):
        parts.append(f"dead letters written under {summary['dead_letters']}*")
    return Group(*parts)


def _workers(workers: int | None) -> list[tuple[str, Any]]:
    """The local runner's worker processes (none on another runner)."""
    return [] if workers is None else [("local worker processes", workers)]


def _skipped(skipped: Mapping[str, str]) -> list[RenderableType]:
    if not skipped:
        return []
    out = table("view not computed", "why")
    for view, why in sorted(skipped.items()):
        out.add_row(view, why)
    return ["", out]


def imported(counts: Mapping[str, int], dead_letters: str | None) -> RenderableType:
    parts: list[RenderableType] = [counters("import into the raw archive", counts)]
    if dead_letters:
        parts.append(f"dead letters written under {dead_letters}*")
    return Group(*parts)


def consistency(report: Mapping[str, Any]) -> RenderableType:
    verdict = (
        "[green]online equals offline[/green]"
        if not report["mismatches"]
        else f"[red]{report['mismatches']:,} mismatches[/red]"
    )
    parts: list[RenderableType] = [
        f"consistency at {report['at']}: {report['values']:,} values of "
        f"{report['entities']:,} entities compared, {verdict}"
    ]
    if report.get("online_only"):
        parts.append(f"{report['online_only']:,} entities online but absent offline")
    if report.get("newer_than_at"):
        parts.append(
            f"{report['newer_than_at']:,} online rows written after that time, not compared"
        )
    if report["by_feature"]:
        by_feature = table("feature", "mismatches", numeric=("mismatches",))
        for name, n in sorted(report["by_feature"].items()):
            by_feature.add_row(name, fmt(n))
        parts += ["", by_feature]
    if report.get("examples"):
        examples = table("view", "feature", "entity", "online", "offline", title="examples")
        for m in report["examples"]:
            examples.add_row(
                m["view"], m["feature"], m["entity"], fmt(m["online"]), fmt(m["offline"])
            )
        parts += ["", examples]
    return Group(*parts)


def feature_rows(rows: Sequence[Mapping[str, Any]]) -> RenderableType:
    """Feature values, one table per view, features down and entities across (a few
    entities per table), so that long feature names are never cut."""
    if not rows:
        return "no rows"
    ids = [k for k in rows[0] if "__" not in k]
    views: dict[str, list[str]] = {}
    for column in rows[0]:
        if "__" in column:
            views.setdefault(column.split("__", 1)[0], []).append(column)
    headers = [_entity_header(row, ids) for row in rows]
    per_table = max(1, min(4, ENTITY_WIDTH // (max(len(h) for h in headers) + 3)))
    parts: list[RenderableType] = []
    for view, columns in views.items():
        for start in range(0, len(rows), per_table):
            chunk = range(start, min(start + per_table, len(rows)))
            out = table(view, *(headers[i] for i in chunk), numeric=[headers[i] for i in chunk])
            for column in columns:
                out.add_row(column.split("__", 1)[1], *(fmt(rows[i].get(column)) for i in chunk))
            parts += [out, ""]
    return Group(*parts[:-1])


def _entity_header(row: Mapping[str, Any], ids: Sequence[str]) -> str:
    keys = [f"{row[k]}" for k in ids if k != "event_timestamp"]
    when = row.get("event_timestamp")
    return " ".join(keys) + (f" @ {when}" if when else "")


def stream(
    ran_s: float,
    counts: Mapping[str, int],
    distributions: Mapping[str, Mapping[str, float]],
    skipped: Mapping[str, str],
) -> RenderableType:
    parts: list[RenderableType] = [
        f"the streaming job ran {ran_s:.1f} s",
        counters("counters", counts),
    ]
    if distributions:
        dist = table("distribution", "count", "mean", "min", "max", numeric=("count", "mean"))
        dist.columns[3].justify = dist.columns[4].justify = "right"
        for name, d in sorted(distributions.items()):
            dist.add_row(
                name, fmt(d.get("count")), fmt(d.get("mean")), fmt(d.get("min")), fmt(d.get("max"))
            )
        parts += ["", dist]
    parts += _skipped(skipped)
    return Group(*parts)
