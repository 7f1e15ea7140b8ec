"""``lpuperf history import DIR``: record run directories that were made before (or without) the store.

Every ``results.json`` under DIR is one run (``OUT/<run-id>/<scenario>/<mode>/``), recorded with the
reports found next to it, oldest first. A run already in the store is the same record (its
``results.json`` hash), so importing a directory twice adds nothing.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from common import UsageError
from history._extract import record_run_dir
from history._store import Store

IMPORT_COMMAND = "import"
MAX_RUNS = 100_000  # a bound on the walk: a results tree far larger than any CI keeps is a wrong DIR


class ImportOutcome(BaseModel):
    recorded: list[int] = Field(default_factory=list, description="record ids, one per run directory")
    skipped: list[str] = Field(default_factory=list, description="'DIR: why' for each run that could not be read")


def run_dirs(root: Path) -> list[Path]:
    """Run directories under ``root`` (``root`` itself when it is one), oldest results first."""
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    found: list[Path] = []
    for path in root.rglob("results.json"):
        found.append(path.parent)
        if len(found) > MAX_RUNS:
            raise UsageError(f"{root}: more than {MAX_RUNS} results.json files; import a narrower directory")
    return sorted(found, key=lambda d: ((d / "results.json").stat().st_mtime, str(d)))


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
