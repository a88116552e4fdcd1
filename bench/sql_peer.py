"""The peer a user would reach for: one DuckDB SQL query per view, generated from its plan.

Each query reads the view's JSON-lines file with `read_ndjson`, keeps one copy per
`event_id`, and computes FEATURES.md's change points with window functions:

1. candidate times per entity: every event time and every expiry `event_time + W`
   (probe rows with NULL values, added with `UNION ALL BY NAME`);
2. every feature at every candidate `c`, over a `RANGE` frame on the event time that
   holds `c - W < event_time <= c`: `INTERVAL 'W - 1 µs' PRECEDING AND CURRENT ROW`
   (timestamps have microsecond precision, so that is exactly the open lower bound;
   all rows at `c` are peers, so every event at `c` is in);
3. one row per (entity, candidate), kept where any value differs from the previous
   candidate's (`IS DISTINCT FROM lag(...)`, whose default is the empty window's
   value): a value is constant between candidates, so the previous candidate's value is
   the value at `c - 1 µs`.

`count_distinct` is DuckDB's windowed `count(DISTINCT x)` with a `RANGE` frame.
`mean` and `stddev` are built from exact integer moments (`count`, `sum(x)`,
`sum(x * x)`) as the project's core does; DuckDB's own `stddev_pop` gives the same
numbers to ~1e-15 but not bit-identical ones from one frame to the next, which would
make step 3 see changes that are not there.

Validation of the event contract (UTF-8, duplicate JSON keys, RFC 3339 with offsets,
value ranges, ...) is not expressed in SQL: the query reads a file the project's
validator has cleaned (invalid lines dropped, duplicates kept for SQL to remove).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from bench.backfill_runs import raw_lines
from bench.harness import timed
from feature_store.core.plan import FeaturePlan, ViewPlan
from feature_store.definitions import Condition, DType
from feature_store.errors import FeatureDefinitionError
from feature_store.events import TOPICS, DeadLetter, validate
from feature_store.registry import Registry
from simulator.traffic import event_file

_SQL_TYPES = {
    DType.STRING: "VARCHAR",
    DType.INT64: "BIGINT",
    DType.FLOAT64: "DOUBLE",
    DType.BOOL: "BOOLEAN",
    DType.TIMESTAMP: "TIMESTAMPTZ",
}
_COUNT_LIKE = frozenset({"count", "count_distinct", "sum"})
SUPPORTED = frozenset({"count", "sum", "mean", "stddev", "count_distinct", "max", "min", "share"})


@dataclass(frozen=True)
class ViewQuery:
    """A view's SQL; its one parameter (`?`) is the path of the source's JSON lines."""

    view: str
    join_key: str
    source: str
    sql: str
    features: tuple[str, ...]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("'", "''")
    return f"'{text}'"


def _condition(cond: Condition | None) -> str:
    if cond is None:
        return "TRUE"
    values = ", ".join(_literal(v) for v in cond.values)
    return f"{_ident(cond.field)} IN ({values})"


def _frame(window: int | None) -> str:
    name = "w_all" if window is None else f"w_{window}"
    lower = (
        "UNBOUNDED PRECEDING"
        if window is None
        else f"INTERVAL '{window - 1} microseconds' PRECEDING"
    )
    return f"{name} AS (PARTITION BY entity_key ORDER BY t RANGE BETWEEN {lower} AND CURRENT ROW)"


def _window_name(window: int | None) -> str:
    return "w_all" if window is None else f"w_{window}"


def _windowed(feature: FeaturePlan) -> dict[str, str]:
    """The window aggregates a feature needs, by column name (`<feature>__<part>`)."""
    over = f"OVER {_window_name(feature.window)}"
    where = "is_event" if feature.where is None else f"is_event AND {_condition(feature.where)}"
    x = _ident(feature.field) if feature.field else ""

    def agg(expression: str, condition: str = where) -> str:
        return f"{expression} FILTER (WHERE {condition}) {over}"

    parts = {
        "count": {"n": agg("count(*)")},
        "count_distinct": {"n": agg(f"count(DISTINCT {x})")},
        "sum": {"s1": agg(f"sum({x})")},
        "max": {"v": agg(f"max({x})")},
        "min": {"v": agg(f"min({x})")},
        "mean": {"n": agg(f"count({x})"), "s1": agg(f"sum({x})")},
        "stddev": {"n": agg(f"count({x})"), "s1": agg(f"sum({x})"), "s2": agg(f"sum({x} * {x})")},
        "share": {
            "n": agg("count(*)"),
            "hits": agg("count(*)", f"{where} AND {_condition(feature.share_where)}"),
        },
    }.get(feature.kind)
    if parts is None:
        msg = (
            f"feature `{feature.name}`: no SQL for aggregation kind {feature.kind!r}; "
            f"have {sorted(SUPPORTED)}"
        )
        raise FeatureDefinitionError(msg)
    return {f"{feature.name}__{part}": expression for part, expression in parts.items()}


def _value(feature: FeaturePlan) -> str:
    """The feature from its window aggregates: exact integer moments, then one division."""
    n, s1, s2, v, hits = (_ident(f"{feature.name}__{p}") for p in ("n", "s1", "s2", "v", "hits"))
    return {
        "count": n,
        "count_distinct": n,
        "sum": f"coalesce({s1}, 0)",
        "max": v,
        "min": v,
        "mean": f"{s1}::DOUBLE / nullif({n}, 0)",
        "stddev": f"sqrt(greatest(({n} * {s2} - {s1} * {s1})::DOUBLE, 0) / nullif({n} * {n}, 0))",
        "share": f"{hits}::DOUBLE / nullif({n}, 0)",
    }[feature.kind]


def _columns(registry: Registry, plan: ViewPlan) -> dict[str, str]:
    """The JSON keys the query reads, with their SQL types (checked against the source)."""
    names = ["event_id", "event_time", plan.join_key] + [f.name for f in plan.fields]
    columns: dict[str, str] = {}
    for name in dict.fromkeys(names):
        found = registry.field_of(plan.source, name)
        if found is None or found.dtype not in _SQL_TYPES:
            msg = f"view `{plan.view}`: field {name!r} is not a scalar field of `{plan.source}`"
            raise FeatureDefinitionError(msg)
        columns[name] = _SQL_TYPES[found.dtype]
    return columns


def _listed(expressions: dict[str, str], indent: str) -> str:
    return f",\n{indent}".join(f"{expr} AS {_ident(name)}" for name, expr in expressions.items())


def view_query(registry: Registry, plan: ViewPlan) -> ViewQuery:
    """The one query computing `plan`'s change-point rows from a JSON-lines file."""
    windowed: dict[str, str] = {}
    for feature in plan.features:
        windowed.update(_windowed(feature))
    columns = _columns(registry, plan)
    struct = ",\n      ".join(f"{_ident(n)}: '{t}'" for n, t in columns.items())
    fields = [n for n in columns if n not in ("event_id", "event_time", plan.join_key)]
    payload = "".join(f", {_ident(n)}" for n in fields)
    widths = ", ".join(f"(INTERVAL '{w} microseconds')" for w in plan.windows)
    probes = (
        ""
        if not widths
        else f"""
  UNION ALL BY NAME
  SELECT entity_key, event_time + width AS t, FALSE AS is_event
  FROM events CROSS JOIN (VALUES {widths}) AS windows(width)"""
    )
    frames = ",\n    ".join(
        _frame(w) for w in sorted({f.window for f in plan.features}, key=lambda w: w or -1)
    )
    values = {f.name: _value(f) for f in plan.features}
    changed = "\n   OR ".join(
        f"{_ident(f.name)} IS DISTINCT FROM lag({_ident(f.name)}, 1, "
        f"{'0' if f.kind in _COUNT_LIKE else 'NULL'}) OVER by_time"
        for f in plan.features
    )
    feature_list = ", ".join(_ident(f.name) for f in plan.features)
    view_filter = "" if plan.where is None else f" AND {_condition(plan.where)}"
    sql = f"""
WITH raw AS (
  SELECT event_id, event_time::TIMESTAMP AS event_time,
         {_ident(plan.join_key)} AS entity_key{payload}
  FROM read_ndjson(?, columns = {{
      {struct}}})
),
deduplicated AS (  -- one copy per event_id: the first by time, then by content
  SELECT * FROM raw
  QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_time{payload}) = 1
),
events AS (
  SELECT * FROM deduplicated WHERE entity_key IS NOT NULL{view_filter}
),
points AS (  -- every event time, and every expiry of every window
  SELECT *, event_time AS t, TRUE AS is_event FROM events{probes}
),
windowed AS (  -- every aggregate at every point; the rows of one time are peers
  SELECT entity_key, t,
    {_listed(windowed, "    ")}
  FROM points
  WINDOW {frames}
),
per_time AS (
  SELECT DISTINCT entity_key, t,
    {_listed(values, "    ")}
  FROM windowed
)
SELECT entity_key AS {_ident(plan.join_key)}, t AS valid_from, {feature_list}
FROM per_time
WINDOW by_time AS (PARTITION BY entity_key ORDER BY t)
QUALIFY {changed}
"""
    return ViewQuery(
        view=plan.view,
        join_key=plan.join_key,
        source=plan.source,
        sql=sql,
        features=plan.feature_names,
    )


def write_clean_files(data: Path, out: Path) -> int:
    """Copies of the event files without the lines the project's validator rejects
    (duplicates stay: SQL removes them). Returns the number of lines dropped."""
    dropped = 0
    out.mkdir(parents=True, exist_ok=True)
    for topic in TOPICS:
        with event_file(out, topic).open("wb") as clean:
            for raw in raw_lines(data, topic):
                if isinstance(validate(topic, raw), DeadLetter):
                    dropped += 1
                else:
                    clean.write(raw + b"\n")
    return dropped


def run_queries(
    registry: Registry, plans: list[ViewPlan], clean: Path
) -> dict[str, tuple[float, pa.Table]]:
    """Each view's query on the clean files: (wall seconds, rows as Arrow)."""
    import duckdb

    out: dict[str, tuple[float, pa.Table]] = {}
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        spill = clean.parent / "duckdb-spill"  # not `.tmp` under the working directory
        connection.execute(f"SET temp_directory = '{spill}'")
        for plan in plans:
            query = view_query(registry, plan)
            with timed() as took:
                table = (
                    connection.execute(query.sql, [str(event_file(clean, plan.source))])
                    .arrow()
                    .read_all()
                )
            out[plan.view] = (took(), table)
    finally:
        connection.close()
    return out
