"""``lpuperf history import DIR``: record run directories that were made before (or without) the store.

Every ``results.json`` under DIR is one run (``OUT/<run-id>/<scenario>/<mode>/``), recorded with the
reports found next to it, oldest first. A directory holding LoadGen's ``mlperf_log_detail.txt`` and no
results.json is a plain MLPerf result (a published submission's ``<scenario>/performance/run_1/``),
read from LoadGen's logs (``loadgen_harness.results_from_mlperf_logs``; its preset says so). A run
already in the store is the same record (the hash of the file it was read from), so importing a
directory twice adds nothing.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from common import UsageError
from history._extract import record_run_dir
from history._store import Store

RESULTS_FILE = "results.json"
DETAIL_FILE = "mlperf_log_detail.txt"

IMPORT_COMMAND = "import"
MAX_RUNS = 100_000  # a bound on the walk: a results tree far larger than any CI keeps is a wrong DIR


class ImportOutcome(BaseModel):
    recorded: list[int] = Field(default_factory=list, description="record ids, one per run directory")
    skipped: list[str] = Field(default_factory=list, description="'DIR: why' for each run that could not be read")


def _results_of(d: Path) -> Path:
    return d / RESULTS_FILE if (d / RESULTS_FILE).is_file() else d / DETAIL_FILE


def run_dirs(root: Path) -> list[Path]:
    """Run directories (lpuperf's, or plain MLPerf log directories) under ``root``, oldest results first."""
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    found: set[Path] = set()
    for name in (RESULTS_FILE, DETAIL_FILE):
        for path in root.rglob(name):
            found.add(path.parent)
            if len(found) > MAX_RUNS:
                raise UsageError(f"{root}: more than {MAX_RUNS} run directories; import a narrower directory")
    return sorted(found, key=lambda d: (_results_of(d).stat().st_mtime, str(d)))


def import_runs(store: Store, root: Path) -> ImportOutcome:
    out = ImportOutcome()
    for d in run_dirs(root):
        try:
            rec = record_run_dir(d, IMPORT_COMMAND)
        except (UsageError, OSError, ValueError) as exc:
            out.skipped.append(
                f"{d}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__}"
            )
            continue
        out.recorded.append(store.record(rec))
    return out
