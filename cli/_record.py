"""Recording in the run store, shared by the commands that produce results.

``add_record_args(p)`` gives a command ``--db`` and ``--no-record``; ``record(args, out, outcome)`` records
the command's typed outcome once its work is done. Recording never fails a command: a store that
cannot be reached or written is one warning line on stderr and the command's exit status stands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate import GateReport

# How long a quiet record (a run stopped by a signal) waits for a busy SQLite store or a PostgreSQL connection.
QUIET_TIMEOUT_S = 1.0
DB_HELP = "run store: a SQLite file or postgresql://USER@HOST/DB (default: $LPUPERF_DB, else OUT/lpuperf.db)"


def add_db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", help=DB_HELP)


def add_record_args(p: argparse.ArgumentParser) -> None:
    add_db_arg(p)
    p.add_argument("--no-record", action="store_true", help="do not record this command in the run store")


def _store_where(db: str | None, out: Path | None) -> str:
    try:
        from history import describe, store_url

        return describe(store_url(db, out))
    except Exception:  # the URL itself is what is wrong (or there is none): show it as given
        return db or "(none)"


def record(
    args: argparse.Namespace,
    out: str | Path | None,
    outcome: Any,
    run_dir: str | Path | None = None,
    artifact: Mapping[str, Any] | None = None,
    quiet: bool = False,
) -> None:
    """Record ``outcome`` in the store of ``out`` (or of the run directory's output root when ``out`` is None).

    ``quiet``: for a run a signal stopped, recorded on the way out: the store gets ``QUIET_TIMEOUT_S`` to
    answer, and one that cannot be reached in time is skipped without a word (the user asked to stop).
    """
    if getattr(args, "no_record", False):
        return
    db: str | None = getattr(args, "db", None)
    root = Path(out) if out is not None else None
    try:
        from history import describe, output_root, record_outcome, store_url

        if root is None:
            root = output_root(run_dir if run_dir is not None else _source_dir(outcome))
        url = store_url(db, root)
        timeout_s = QUIET_TIMEOUT_S if quiet else None
        ids = record_outcome(url, args.command, outcome, run_dir=run_dir, artifact=artifact, timeout_s=timeout_s)
    except Exception as exc:  # recording must never fail the run it records
        if quiet:
            return
        where = _store_where(db, root)
        print(f"lpuperf {args.command}: warning: not recorded in the run store {where}: {_line(exc)}", file=sys.stderr)
        return
    if ids:
        print(f"recorded {', '.join(f'#{i}' for i in ids)} in {describe(url)}")


def _line(exc: BaseException) -> str:
    """One line for any failure: a database error's driver message, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _source_dir(outcome: Any) -> Path:
    source = getattr(outcome, "source", "") or getattr(outcome, "log_dir", "")
    return Path(source or ".")


def gate_against_last_good(
    args: argparse.Namespace, results_path: Path, report: GateReport | None, tolerance: float
) -> GateReport:
    """The gate's report with one objective per metric compared against the store's last good build.

    A store that cannot be read is missing evidence: one failing objective says why.
    """
    from gate import ObjectiveOutcome
    from history import (
        LAST_GOOD,
        last_good_objectives,
        open_store,
        output_root,
        record_run_dir,
        store_url,
        with_objectives,
    )
    from workflows import CompareConfig

    candidate = record_run_dir(results_path, args.command)
    db: str | None = getattr(args, "db", None)
    root = output_root(results_path)
    try:
        with open_store(store_url(db, root), create=False) as store:
            objectives = last_good_objectives(store, candidate, CompareConfig(tolerance=tolerance)).objectives
    except Exception as exc:  # unreachable or missing store: the gate cannot see a baseline
        line = f"{LAST_GOOD}: run store {_store_where(db, root)}: {_line(exc)}"
        objectives = [ObjectiveOutcome(name=LAST_GOOD, direction="pass", passed=False, line=line)]
    return with_objectives(report, str(results_path), objectives)
