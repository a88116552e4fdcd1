"""`RowBatch.of` builds the same frozen batch as the constructor."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from feature_store.core.windows import RowBatch


def test_of_is_the_constructor_without_pending() -> None:
    valid_from = np.array([5, 9], dtype=np.int64)
    values = {"n": np.array([1.0, 2.0])}
    fast = RowBatch.of("v", "k", valid_from, values)
    plain = RowBatch("v", "k", valid_from, values)
    for f in dataclasses.fields(RowBatch):
        assert getattr(fast, f.name) is getattr(plain, f.name)
    assert len(fast) == 2
    assert fast.row(1) == {"n": 2.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.view = "w"  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(fast))
    assert (back.view, back.entity_key, back.pending) == ("v", "k", None)
    assert back.valid_from.tolist() == [5, 9]
    assert back.values["n"].tolist() == [1.0, 2.0]
