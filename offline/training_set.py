"""Training sets: a point-in-time join of labelled entities with a Feast feature service.

The labels are a table of entity keys, an `event_timestamp` per row (when the label was
observed: features are read as of then, never later) and any label columns. Feast's
`get_historical_features` does the join (on BigQuery, or the emulator through the
store type the repo names), in batches of rows so that a long file shows progress and
memory stays bounded; the batches are written to one Parquet file in the labels' order,
with Arrow types kept (an INT64 feature with nulls stays INT64, which pandas would turn
into float). Features with no value at a row's time are null, and counted per feature
in the summary: a view no job computes yet is all null, and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from feature_store.errors import FeatureStoreError

logger = logging.getLogger(__name__)

TIME_COLUMN = "event_timestamp"
_ROW = "label_row_"  # the labels' order, passed through Feast's join and dropped after


class TrainingSetError(FeatureStoreError, ValueError):
    """The labels cannot be joined: a missing column, an empty key, an unparsable time."""


@dataclass(frozen=True, kw_only=True)
class TrainingSetSummary:
    """What was written: rows, nulls per feature column, the labels' time range."""

    service: str
    path: Path
    rows: int
    label_columns: tuple[str, ...]
    nulls: Mapping[str, int]  # per feature column (Feast's `view__feature` names)
    start: datetime | None
    end: datetime | None

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.nulls)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "path": str(self.path),
            "rows": self.rows,
            "label_columns": list(self.label_columns),
            "nulls": dict(self.nulls),
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }


def service_join_keys(store: Any, service: str) -> list[str]:
    """The join keys of every entity of the service's feature views, as Feast lists them."""
    feature_service = store.get_feature_service(service)
    keys: dict[str, None] = {}
    for projection in feature_service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        for entity in view.entities:
            keys[store.get_entity(entity).join_key] = None
    return list(keys)


def read_labels(
    path: Path, join_keys: Sequence[str], time_column: str = TIME_COLUMN
) -> pd.DataFrame:
    """The labels file (CSV) with keys as strings and times as UTC timestamps (each
    with its offset). Any problem is an error naming the column, line and value."""
    try:
        frame = pd.read_csv(path, dtype={key: str for key in join_keys}, keep_default_na=False)
    except (OSError, ValueError) as exc:
        msg = f"cannot read labels file {str(path)!r}: {exc}"
        raise TrainingSetError(msg) from exc
    required = [*join_keys, time_column]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        msg = (
            f"labels file {str(path)!r} lacks column(s) {missing}: it needs {required}, "
            f"it has {list(frame.columns)}"
        )
        raise TrainingSetError(msg)
    if frame.empty:
        msg = f"labels file {str(path)!r} has no rows"
        raise TrainingSetError(msg)
    for key in join_keys:
        empty = frame.index[frame[key].str.strip() == ""]
        if len(empty):
            msg = f"labels file {str(path)!r}: `{key}` is empty on line {int(empty[0]) + 2}"
            raise TrainingSetError(msg)
    times = [_parse_time(value) for value in frame[time_column].astype(str)]
    bad = [i for i, t in enumerate(times) if t is None]
    if bad:
        value = frame[time_column].iloc[bad[0]]
        msg = (
            f"labels file {str(path)!r}: `{time_column}` on line {bad[0] + 2} is not a "
            f"timestamp with a UTC offset: {value!r} ({len(bad)} such row(s); use ISO 8601, "
            "e.g. 2024-05-01T12:00:00Z)"
        )
        raise TrainingSetError(msg)
    frame[time_column] = pd.to_datetime(times, utc=True)
    return frame


def _parse_time(text: str) -> datetime | None:
    """An ISO 8601 time with an offset, in UTC; None for anything else (naive times
    too: a local time taken for UTC would shift every feature read)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def build_training_set(
    store: Any,
    service: str,
    labels: pd.DataFrame,
    out: Path,
    *,
    time_column: str = TIME_COLUMN,
    batch_rows: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> TrainingSetSummary:
    """Joins `labels` with the service's features as of each row's time and writes
    `out` (Parquet), one batch of `batch_rows` rows at a time; `progress(n)` after each
    batch of n rows."""
    if batch_rows < 1:
        msg = f"batch_rows must be positive, got {batch_rows}"
        raise TrainingSetError(msg)
    if _ROW in labels.columns:
        msg = f"labels may not have a column named {_ROW!r} (used to keep their order)"
        raise TrainingSetError(msg)
    feature_service = store.get_feature_service(service)
    numbered = labels.assign(**{_ROW: range(len(labels))})
    label_columns = tuple(labels.columns)
    nulls: dict[str, int] = {}
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, len(numbered), batch_rows):
            batch = numbered.iloc[start : start + batch_rows]
            table = store.get_historical_features(
                entity_df=batch, features=feature_service, full_feature_names=True
            ).to_arrow()
            table = (
                table.sort_by(_ROW)
                .drop_columns([_ROW])
                .select(
                    [
                        *label_columns,
                        *(c for c in table.column_names if c not in (*label_columns, _ROW)),
                    ]
                )
            )
            if writer is None:
                out.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(out, table.schema)
                nulls = {c: 0 for c in table.column_names if c not in label_columns}
            writer.write_table(table.cast(writer.schema))
            for column in nulls:
                nulls[column] += table.column(column).null_count
            if progress:
                progress(len(batch))
    finally:
        if writer is not None:
            writer.close()
    times = labels[time_column]
    summary = TrainingSetSummary(
        service=service,
        path=out,
        rows=len(labels),
        label_columns=label_columns,
        nulls=nulls,
        start=times.min().to_pydatetime(),
        end=times.max().to_pydatetime(),
    )
    logger.debug("wrote training set %s: %s rows, %s features", out, summary.rows, len(nulls))
    return summary


def null_share(summary: TrainingSetSummary, column: str) -> float:
    return summary.nulls[column] / summary.rows if summary.rows else 0.0


__all__ = [
    "TIME_COLUMN",
    "TrainingSetError",
    "TrainingSetSummary",
    "build_training_set",
    "null_share",
    "read_labels",
    "service_join_keys",
]
