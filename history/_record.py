"""Recording a command's outcome after it finished: resolve the store, build the records, write them.

Recording runs after the command's own work, never on LoadGen's path, and a store that cannot be
reached is the caller's warning, not a failure of the run (``cli._record``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import JsonValue

from common import UsageError, read_json_object
from history._outcomes import Outcome, records_for
from history._store import DB_FILE, open_store

# How far up from a run directory a store file is looked for (OUT/<run-id>/compliance/TEST06/<scenario>/<mode>).
_ROOT_SEARCH_DEPTH = 6


def output_root(run_dir: str | Path) -> Path | None:
    """The output root a run directory lies under: the nearest ancestor holding ``lpuperf.db``, else ``OUT``
    of ``OUT/<run-id>/<scenario>/<mode>/`` when its results.json names that run id; None for a directory
    laid out otherwise (a log from elsewhere), so nothing writes a store into an unrelated directory."""
    d = Path(run_dir).resolve()
    if d.is_file():
        d = d.parent
    for parent in list(d.parents)[:_ROOT_SEARCH_DEPTH]:
        if (parent / DB_FILE).is_file():
            return parent
    results = d / "results.json"
    if len(d.parents) > 2 and results.is_file():
        try:
            run_id = read_json_object(results).get("run_id")
        except (UsageError, OSError, ValueError):
            return None
        if run_id == d.parent.parent.name:
            return d.parents[2]
    return None


def record_outcome(
    url: str,
    command: str,
    outcome: Outcome,
    run_dir: str | Path | None = None,
    artifact: Mapping[str, JsonValue] | None = None,
    timeout_s: float | None = None,
) -> list[int]:
    """Record what ``command`` produced in the store at ``url``; returns the record ids.

    ``timeout_s`` bounds the wait for a busy or unreachable store (``open_store``).
    """
    recs = records_for(command, outcome, run_dir=run_dir, artifact=artifact)
    if not recs:
        return []
    with open_store(url, timeout_s=timeout_s) as store:
        return [store.record(r) for r in recs]
