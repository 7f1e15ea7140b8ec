"""The layer order is a checked contract: lint-imports passes on the tree, fails on a planted back-edge,
and no package reaches into another package's private (``_name``) modules."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = (
    "common",
    "proto",
    "scenarios",
    "sut",
    "loadgen_harness",
    "accuracy",
    "compliance",
    "gate",
    "workflows",
    "history",
    "cli",
)
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            # `from pkg import _private` reaches in just as `import pkg._private` does.
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if a.name.startswith("_")]
    return out


def test_no_package_imports_another_packages_private_modules() -> None:
    bad: list[str] = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for line, name in _imports(path):
                parts = name.split(".")
                if parts[0] in PACKAGES and parts[0] != pkg and len(parts) > 1 and parts[1].startswith("_"):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "private modules imported across packages:\n" + "\n".join(bad)


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed in this environment")
def test_layer_contract_holds_and_catches_a_planted_back_edge(tmp_path: Path) -> None:
    kept = _lint_imports(ROOT)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "KEPT" in kept.stdout
    for name in (*PACKAGES, "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "data", "*.npz"))
        else:
            shutil.copy(src, tmp_path / name)
    # The SUT reaching up into the harness is exactly the kind of edge the contract exists to stop.
    (tmp_path / "sut" / "_planted.py").write_text("from loadgen_harness import RunConfig\n", encoding="utf-8")
    broken = _lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout
    assert "sut._planted -> loadgen_harness" in broken.stdout
