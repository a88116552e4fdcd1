"""Training-set labels and batching: errors that name the value, order and nulls kept.

Feast's join itself is exercised on the emulator (tests/integration/test_training_set.py);
here a small stand-in answers `get_historical_features` in its own (reversed) order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from offline.training_set import TrainingSetError, build_training_set, read_labels

KEYS = ["user_id", "business_id"]


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_labels_are_read_with_string_keys_and_utc_times(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "user_id,business_id,event_timestamp,label\n"
        "007,b1,2024-05-01T12:00:00Z,1\n"
        "u2,b2,2024-05-01 14:00:00+02:00,0\n"
        "u3,b3,2024-05-01T12:00:00.000001+00:00,1\n",
    )
    frame = read_labels(path, KEYS)
    assert list(frame["user_id"]) == ["007", "u2", "u3"]  # not the number 7
    assert list(frame["event_timestamp"]) == [
        pd.Timestamp("2024-05-01T12:00:00Z"),
        pd.Timestamp("2024-05-01T12:00:00Z"),
        pd.Timestamp("2024-05-01T12:00:00.000001Z"),
    ]
    assert list(frame["label"]) == [1, 0, 1]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,ts,label\nu1,2024-05-01T12:00:00Z,1\n")
    with pytest.raises(
        TrainingSetError, match=r"lacks column\(s\) \['business_id', 'event_timestamp'\]"
    ):
        read_labels(path, KEYS)


def test_an_unparsable_time_is_named_with_its_line(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "user_id,business_id,event_timestamp\n"
        "u1,b1,2024-05-01T12:00:00Z\n"
        "u2,b2,yesterday\n"
        "u3,b3,2024-13-01T00:00:00Z\n"
        "u4,b4,2024-05-01T12:00:00\n",
    )
    with pytest.raises(TrainingSetError, match=r"line 3 .* offset: 'yesterday' \(3 such"):
        read_labels(path, KEYS)


def test_an_empty_key_is_named_with_its_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,business_id,event_timestamp\nu1,,2024-05-01T12:00:00Z\n")
    with pytest.raises(TrainingSetError, match=r"`business_id` is empty on line 2"):
        read_labels(path, KEYS)


def test_a_file_without_rows_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,business_id,event_timestamp\n")
    with pytest.raises(TrainingSetError, match="has no rows"):
        read_labels(path, KEYS)


@dataclass
class _Job:
    frame: pd.DataFrame

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pandas(self.frame, preserve_index=False)


class _Store:
    """Answers each batch reversed, with `v__score` = the label times 10 (None for 0)."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def get_feature_service(self, name: str) -> str:
        return name

    def get_historical_features(self, *, entity_df: pd.DataFrame, features: Any, **_: Any) -> _Job:
        assert features == "svc"
        self.batches.append(len(entity_df))
        score = [None if x == 0 else x * 10 for x in entity_df["label"]]
        frame = entity_df.assign(**{"v__score": pd.array(score, dtype="Int64")})
        return _Job(frame.iloc[::-1])


def test_batches_keep_the_labels_order_and_count_nulls(tmp_path: Path) -> None:
    times = [datetime(2024, 5, d, tzinfo=UTC) for d in (3, 1, 2, 5, 4)]
    labels = pd.DataFrame(
        {"user_id": list("abcde"), "event_timestamp": times, "label": [1, 0, 2, 0, 3]}
    )
    store, seen = _Store(), []
    out = tmp_path / "sub" / "train.parquet"
    summary = build_training_set(store, "svc", labels, out, batch_rows=2, progress=seen.append)
    assert store.batches == seen == [2, 2, 1]
    written = pq.read_table(out)
    assert written.column_names == ["user_id", "event_timestamp", "label", "v__score"]
    assert written.column("user_id").to_pylist() == list("abcde")
    assert written.column("v__score").to_pylist() == [10, None, 20, None, 30]
    assert written.schema.field("v__score").type == pa.int64()
    assert summary.rows == 5
    assert dict(summary.nulls) == {"v__score": 2}
    assert (summary.start, summary.end) == (times[1], times[3])
    assert summary.label_columns == ("user_id", "event_timestamp", "label")


def test_a_label_column_may_not_take_the_order_columns_name(tmp_path: Path) -> None:
    labels = pd.DataFrame({"label_row_": [1]})
    with pytest.raises(TrainingSetError, match="'label_row_'"):
        build_training_set(_Store(), "svc", labels, tmp_path / "t.parquet")
