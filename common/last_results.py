"""Results that commands leave under the state dir for others to show (the page).

`feature-store consistency` saves its last report here; `feature-store ui` reads it.
One JSON file per kind of result, replaced whole (written aside, then renamed), so a
reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feature_store.config import PlatformConfig

CONSISTENCY = "consistency"


def result_path(config: PlatformConfig, kind: str) -> Path:
    return config.state_dir / "results" / f"{config.feast_project}-{kind}.json"


def save_result(config: PlatformConfig, kind: str, data: dict[str, Any]) -> Path:
    """Writes `data` with the time it was saved; returns the file."""
    path = result_path(config, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"saved_at": datetime.now(UTC).isoformat(), **data}
    aside = path.with_suffix(f".{os.getpid()}.tmp")
    aside.write_text(json.dumps(body, indent=2, default=str), encoding="utf-8")
    aside.replace(path)
    return path


def load_result(config: PlatformConfig, kind: str) -> dict[str, Any] | None:
    """The last saved result of this kind, or None when there is none (or unreadable)."""
    path = result_path(config, kind)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None
