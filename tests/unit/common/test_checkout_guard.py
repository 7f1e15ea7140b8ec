"""The session guard (tests/conftest.py) fails a pytest run that writes into its checkout and names the paths.

Each case runs pytest in a subprocess over a planted checkout in ``tmp_path`` (not a git repository, as a
tarball or an exported tree is not): the guard copied in as its ``tests/conftest.py``, files standing for
sources and a user's own results, and one planted test. Nothing here writes into the real checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import _BEFORE, GUARD_ENV, ROOT, snapshot

CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"

# Writes what tools write on their own (never the test's doing) and its own tmp_path: never flagged.
TOOL_WRITES = """
def _tool_writes(root, tmp_path):
    (tmp_path / "fine.txt").write_text("ok")
    for d in ("pkg/__pycache__", ".mypy_cache", ".ruff_cache", ".venv-x/lib", "x.egg-info"):
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d / "written").write_text("by a tool")
"""

STRAY = f"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
{TOOL_WRITES}

def test_writes_into_the_checkout(tmp_path):
    _tool_writes(ROOT, tmp_path)
    with open(ROOT / "results" / "lpuperf.db", "ab") as f:  # the user's own run store
        f.write(b"one more record")
    (ROOT / "results" / "compliance").mkdir()
    (ROOT / "results" / "compliance" / "context_report.json").write_text("{{}}")
    (ROOT / "pkg" / "source.py").write_text("X = 22\\n")
    (ROOT / "old.txt").unlink()
"""

CLEAN = f"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
{TOOL_WRITES}

def test_writes_only_where_it_may(tmp_path):
    _tool_writes(ROOT, tmp_path)
    assert "LPUPERF_DB" not in os.environ and "LPUPERF_DB_PASSWORD_FILE" not in os.environ
"""


def _checkout(tmp_path: Path, planted: str) -> Path:
    root = tmp_path / "checkout"
    (root / "tests").mkdir(parents=True)
    shutil.copy(CONFTEST, root / "tests" / "conftest.py")
    (root / "tests" / "__init__.py").write_text("")
    (root / "tests" / "test_planted.py").write_text(planted)
    (root / "pytest.ini").write_text("[pytest]\n")  # the planted checkout is the inner run's rootdir
    (root / "pkg").mkdir()
    (root / "pkg" / "source.py").write_text("X = 1\n")
    (root / "old.txt").write_text("kept\n")
    (root / "results").mkdir()
    (root / "results" / "lpuperf.db").write_bytes(b"the user's records")
    (root / ".venv-x").mkdir()
    (root / ".venv-x" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # any virtualenv, whatever its name
    return root


def _pytest(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", GUARD_ENV)}
    run_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args, "tests"],
        cwd=root,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_stray_write_fails_the_session_naming_each_path(tmp_path: Path) -> None:
    root = _checkout(tmp_path, STRAY)
    proc = _pytest(root, "--basetemp", str(tmp_path / "inner"), CI="true")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "1 passed" in out, out
    assert "checkout changed" in out and f"wrote into the checkout {root.resolve()} (4 paths)" in out, out
    for line in (
        "added   results/compliance/context_report.json",
        "changed results/lpuperf.db",
        "changed pkg/source.py",
        "removed old.txt",
    ):
        assert line in out, out
    for tool_path in ("__pycache__", ".mypy_cache", ".ruff_cache", ".venv-x", "egg-info", ".pytest_cache", "fine.txt"):
        assert tool_path not in out, out


def test_a_clean_session_passes_with_pytests_temp_inside_the_checkout(tmp_path: Path) -> None:
    root = _checkout(tmp_path, CLEAN)
    # The run store variable is dropped for the session, so a command records under its own --out.
    proc = _pytest(root, "--basetemp", str(root / "pytest-temp"), CI="true", LPUPERF_DB=str(root / "team.db"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "1 passed" in out and "checkout changed" not in out, out
    assert (root / "pytest-temp").is_dir() and (root / ".pytest_cache").is_dir()  # written, and not flagged


def test_the_guard_can_be_turned_off(tmp_path: Path) -> None:
    root = _checkout(tmp_path, STRAY)
    proc = _pytest(root, "--basetemp", str(tmp_path / "inner"), **{GUARD_ENV: "0"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "checkout changed" not in out, out


def test_this_session_is_guarded_by_a_cheap_snapshot(request: pytest.FixtureRequest) -> None:
    if os.environ.get(GUARD_ENV, "1") in ("0", "off", "no", "false"):
        pytest.skip(f"{GUARD_ENV} turns the guard off for this session")
    before = request.config.stash[_BEFORE]
    assert "pyproject.toml" in before and "tests/conftest.py" in before
    assert not [p for p in before if p.startswith((".venv/", ".git/")) or "__pycache__" in p]
    t0 = time.perf_counter()
    snapshot(ROOT)
    assert time.perf_counter() - t0 < 5.0  # a few ms on a quiet machine; the bound only catches a walk into .venv
