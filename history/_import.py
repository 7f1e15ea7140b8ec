"""``lpuperf history import DIR``: record run directories that were made before (or without) the store.

Every ``results.json`` under DIR is one run (``OUT/<run-id>/<scenario>/<mode>/``), recorded with the
reports found next to it, oldest first. A directory holding LoadGen's ``mlperf_log_detail.txt`` and no
results.json is a plain MLPerf result (a published submission's ``<scenario>/performance/run_1/``),
read from LoadGen's logs (``loadgen_harness.results_from_mlperf_logs``; its preset says so). A run
already in the store is the same record (the hash of the file it was read from, and for MLPerf logs the
``<benchmark>/<scenario>`` directories they sit in: ``-99`` and ``-99.9`` results with the same logs are two
runs), so importing a directory twice adds nothing.

A compliance folder (``TEST01``, ``TEST04``, ``TEST06``, ``TEST07``, ``TEST09``) is no run of its own: its
verification file's verdict is attached to the performance run of its scenario. The summary counts the
records stored, new and already there, so it matches what ``history list`` shows.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from common import UsageError
from history._extract import record_run_dir
from history._models import Verdict
from history._store import Store

RESULTS_FILE = "results.json"
DETAIL_FILE = "mlperf_log_detail.txt"

IMPORT_COMMAND = "import"
MAX_RUNS = 100_000  # a bound on the walk: a results tree far larger than any CI keeps is a wrong DIR


# MLPerf's compliance folders and the verification files their verdicts are read from.
COMPLIANCE_DIR = re.compile(r"^TEST0[0-9]$")
VERIFY_FILES = ("verify_accuracy.txt", "verify_performance.txt", "verify_output_len.txt")


class ImportOutcome(BaseModel):
    recorded: list[int] = Field(default_factory=list, description="record ids, one per run directory")
    skipped: list[str] = Field(default_factory=list, description="'DIR: why' for each run that could not be read")
    new: int = Field(default=0, description="records the store did not hold before")
    compliance_attached: int = Field(default=0, description="compliance verdicts attached to a run")

    @property
    def stored(self) -> int:
        """Distinct records these directories are in the store (a directory read twice is one)."""
        return len(set(self.recorded))


def _results_of(d: Path) -> Path:
    return d / RESULTS_FILE if (d / RESULTS_FILE).is_file() else d / DETAIL_FILE


def run_dirs(root: Path) -> list[Path]:
    """Run directories (lpuperf's, or plain MLPerf log directories) under ``root``, oldest results first."""
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    found: set[Path] = set()
    for name in (RESULTS_FILE, DETAIL_FILE):
        for path in root.rglob(name):
            if in_compliance_dir(path.parent, root):
                continue  # attached to its scenario's run (compliance_verdicts), not a run itself
            found.add(path.parent)
            if len(found) > MAX_RUNS:
                raise UsageError(f"{root}: more than {MAX_RUNS} run directories; import a narrower directory")
    return sorted(found, key=lambda d: (_results_of(d).stat().st_mtime, str(d)))


def in_compliance_dir(d: Path, root: Path) -> bool:
    """Whether ``d`` lies in a TEST01/04/06/07/09 folder below ``root``."""
    rel = d.relative_to(root).parts if d.is_relative_to(root) else d.parts
    return any(COMPLIANCE_DIR.match(part) for part in rel)


def _passed(test: str, text: str) -> bool:
    """MLPerf's verification files say ``TEST PASS``; TEST06's lists its checks and a completion line."""
    if "TEST PASS" in text:
        return True
    if test != "TEST06" or "TEST06 verification complete" not in text:
        return False
    checks = [ln.partition(":")[2].strip() for ln in text.splitlines() if " check pass:" in ln]
    return bool(checks) and all(c in ("True", "Skipped") for c in checks)


def compliance_verdicts(run_dir: Path) -> list[Verdict]:
    """The verdicts of the compliance folders beside a plain MLPerf performance run (``<scenario>/TESTnn``)."""
    if not (run_dir.name.startswith("run_") and run_dir.parent.name == "performance"):
        return []
    out = []
    for test_dir in sorted(p for p in run_dir.parents[1].iterdir() if p.is_dir() and COMPLIANCE_DIR.match(p.name)):
        files = [test_dir / f for f in VERIFY_FILES if (test_dir / f).is_file()]
        if not files:
            out.append(Verdict(kind="compliance", name=test_dir.name, passed=False, message="no verification file"))
            continue
        texts = {f.name: f.read_text(encoding="utf-8", errors="replace") for f in files}
        failed = [name for name, text in texts.items() if not _passed(test_dir.name, text)]
        message = f"{', '.join(failed)} did not pass" if failed else f"{', '.join(texts)}: pass"
        out.append(Verdict(kind="compliance", name=test_dir.name, passed=not failed, message=message))
    return out


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
        verdicts = compliance_verdicts(d)
        rec.add_verdicts(verdicts)
        out.compliance_attached += len(verdicts)
        known = bool(rec.results_sha256) and store.find_results(rec.results_sha256) is not None
        rid = store.record(rec)
        out.new += not known and rid not in out.recorded
        out.recorded.append(rid)
    return out
