"""``history list``, ``history show`` and ``export`` of one run stay light: what they import, not how long.

Each command runs in a fresh interpreter on a store and run directory written as the harness writes
them; the test fails when a module those commands never need is on their path again. Before: the
store's package pulled the accuracy stack (nltk, which imports scipy.stats), Alembic on every open,
and export the whole workflows package (validate, compare: nltk, scipy, yaml) plus grpc, about 2 s in
all. bench/cli_latency.py times the same commands.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main
from tests.history_runs import manifest, write_run

ROOT = Path(__file__).resolve().parents[3]

# Never on these commands' path: the accuracy stack, schema migrations, the stages, RPC and LoadGen.
NEVER = (
    "nltk",
    "scipy",
    "torch",
    "transformers",
    "alembic",
    "yaml",
    "grpc",
    "mlperf_loadgen",
    "accuracy",
    "compliance",
    "gate",
    "workflows._compare",
    "workflows._validate",
    "workflows._session",
    "history._extract",
    "history._outcomes",
)
# The store reads no run document for list and show: no numpy, no harness models either.
NOT_FOR_THE_STORE = ("numpy", "loadgen_harness", "workflows")
# Export reads queries.npz: no database.
NOT_FOR_EXPORT = ("sqlalchemy", "history")

_PROBE = """
import contextlib, io, json, sys
import cli

with contextlib.redirect_stdout(io.StringIO()) as out:
    rc = cli.main(json.loads(sys.argv[1]))
print(json.dumps({"rc": rc, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _imports(argv: list[str]) -> tuple[str, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0, got["out"]
    return got["out"], set(got["modules"])


@pytest.fixture
def recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An output root holding one run directory and the store that recorded it (at the newest schema)."""
    out = tmp_path / "results"
    write_run(out, "r1", manifest("b1"))
    assert main(["history", "import", str(out), "--out", str(out)]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize("argv", [["history", "list"], ["history", "show", "1"]])
def test_list_and_show_import_neither_the_stages_nor_migrations_nor_numpy(recorded: Path, argv: list[str]) -> None:
    out, modules = _imports([*argv, "--out", str(recorded)])
    assert "r1" in out
    loaded = sorted(m for m in (*NEVER, *NOT_FOR_THE_STORE) if m in modules)
    assert loaded == [], f"lpuperf {' '.join(argv)} imported {loaded}"


def test_export_imports_neither_the_stages_nor_the_store(recorded: Path, tmp_path: Path) -> None:
    run_dir = recorded / "r1" / "Server" / "performance"
    csv_path = tmp_path / "q.csv"
    _, modules = _imports(["export", str(run_dir), "-o", str(csv_path)])
    assert len(csv_path.read_text().splitlines()) == 201  # the header and one row per query
    loaded = sorted(m for m in (*NEVER, *NOT_FOR_EXPORT) if m in modules)
    assert loaded == [], f"lpuperf export imported {loaded}"
