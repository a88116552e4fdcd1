"""The one-way imports of ARCHITECTURE.md, read from the source (every import, also
those inside functions): a module may import only the project packages its layer allows."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = {
    "feature_store", "common", "online", "offline", "simulator", "jobs", "infra", "ui", "bench"
}  # fmt: skip

# layer -> the project packages its modules may import (besides its own); where
# `feature_store` is allowed, so is its `core`
ALLOWED: dict[str, set[str]] = {
    "feature_store.core": {"feature_store"},
    "feature_store": {"feature_store.core"},  # only the package root registers the kinds
    "common": {"feature_store"},
    "online": {"common", "feature_store"},
    "offline": {"common", "feature_store"},
    "simulator": {"feature_store"},
    "infra": {"feature_store"},
    "jobs": {"common", "feature_store", "online", "offline", "simulator", "infra"},
    # The page sits on top of the jobs' wiring (Feast store, retrieval); the CLI loads its
    # command module by name (`jobs.cli._COMMAND_MODULES`), and no job imports it.
    "ui": {"common", "feature_store", "online", "offline", "jobs"},
    "bench": {"common", "feature_store", "online", "offline", "simulator", "infra", "jobs"},
}


def _layer(module: str) -> str:
    return (
        "feature_store.core"
        if module.startswith("feature_store.core")
        else module.split(".", maxsplit=1)[0]
    )


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return [name for name in found if name.split(".")[0] in PROJECT]


def violations() -> list[str]:
    out = []
    for package in PROJECT:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            layer = _layer(module)
            for name in _imports(path):
                target = _layer(name)
                if target == layer:
                    continue
                if target == "feature_store" and layer == "feature_store.core":
                    continue
                if layer == "feature_store" and target == "feature_store.core":
                    if module != "feature_store.__init__":
                        out.append(f"{module} imports {name}")
                    continue
                if target == "feature_store.core" and "feature_store" in ALLOWED[layer]:
                    continue
                if target not in ALLOWED[layer]:
                    out.append(f"{module} imports {name}")
    return out


def test_imports_go_one_way() -> None:
    assert violations() == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from jobs.cli import main\n    import online.sink\n")
    assert _imports(bad) == ["jobs.cli", "jobs.cli.main", "online.sink"]
    assert "jobs" not in ALLOWED["common"] and "online" not in ALLOWED["offline"]
