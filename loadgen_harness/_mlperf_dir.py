"""A RunResult from a plain MLPerf result directory (a published submission, or any LoadGen log directory).

Published results hold LoadGen's logs and nothing of lpuperf's: ``<scenario>/performance/run_1/`` with
``mlperf_log_summary.txt`` and ``mlperf_log_detail.txt``. :func:`run_results_file` finds what a
directory argument names (results.json first, else the detail log of the directory itself, of
``run_1/`` under it, or of ``performance/run_1/`` under a scenario directory), and
:func:`results_from_mlperf_logs` builds the RunResult from the detail log the same way a run fills
its own: validity, rates, percentiles (the summary's TPOT under either label) and settings.

What only the harness records (per-query records, errors by status, the SUT's manifest) is absent:
``n_errors`` stays 0, no ``queries.npz`` lies next to it, and ``preset`` is :data:`MLPERF_LOGS_PRESET`
so every reader can tell.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from loadgen_harness._results import (
    DETAIL_FILE,
    RESULTS_FILE,
    RunResult,
    fill_from_detail,
    parse_detail_log,
    parse_summary_token_latencies,
)

# The preset of a RunResult read from MLPerf logs: no lpuperf run made it.
MLPERF_LOGS_PRESET = "mlperf-logs"
_MODES = {"PerformanceOnly": "performance", "AccuracyOnly": "accuracy"}


def mlperf_log_dir(path: str | Path) -> Path | None:
    """The directory holding LoadGen's detail log that ``path`` names, or None.

    ``path`` may be the log directory itself (``run_1/``, ``accuracy/``), ``performance/`` or a
    scenario directory of MLPerf's layout.
    """
    p = Path(path)
    for d in (p, p / "run_1", p / "performance" / "run_1"):
        if (d / DETAIL_FILE).is_file():
            return d
    return None


def run_results_file(path: str | Path) -> Path:
    """results.json of a run directory (or the file itself), else the MLPerf detail log a directory holds.

    FileNotFoundError names the path when there is neither.
    """
    p = Path(path)
    if p.is_file():
        return p
    if (p / RESULTS_FILE).is_file():
        return p / RESULTS_FILE
    log_dir = mlperf_log_dir(p) if p.is_dir() else None
    if log_dir is not None:
        return log_dir / DETAIL_FILE
    raise FileNotFoundError(
        f"{p}: no results.json and no MLPerf logs (expected a run directory OUT/<run-id>/<scenario>/<mode>/ "
        "or an MLPerf result directory <scenario>/performance/run_1/ with mlperf_log_detail.txt)"
    )


def _layout(log_dir: Path) -> tuple[Path | None, str]:
    """(scenario directory, how the logs were found) from MLPerf's ``<scenario>/{performance/run_N,accuracy}``."""
    if log_dir.name.startswith("run_") and log_dir.parent.name == "performance":
        return log_dir.parents[1], "performance"
    if log_dir.name in ("performance", "accuracy"):
        return log_dir.parent, log_dir.name
    return None, ""


def _system_description(scen_dir: Path) -> dict[str, JsonValue]:
    """systems/<system>.json of ``<division>/<submitter>/results/<system>/<benchmark>/<scenario>``, if any."""
    from common import UsageError, read_json_object

    if len(scen_dir.parents) < 4 or scen_dir.parents[2].name != "results":
        return {}
    system = scen_dir.parents[1].name
    path = scen_dir.parents[3] / "systems" / f"{system}.json"
    if not path.is_file():
        return {}
    try:
        return dict(read_json_object(path, "system description"))
    except (UsageError, OSError):
        return {}  # the description only labels the result; the logs are what count


def _count(values: dict[str, JsonValue], *keys: str) -> int | None:
    for key in keys:
        v = values.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
            return int(v)
    return None


def results_from_mlperf_logs(log_dir: str | Path) -> RunResult:
    """The RunResult of the LoadGen logs in ``log_dir`` (where mlperf_log_detail.txt lies)."""
    from scenarios import project_benchmark, scenario_names

    d = Path(log_dir)
    detail = parse_detail_log(d / DETAIL_FILE)
    v = detail.values
    scen_dir, _ = _layout(d)
    logged = str(v.get("effective_scenario") or v.get("requested_scenario") or "")
    # MLPerf names the Interactive scenario by its directory; LoadGen logs it as Server.
    named = scen_dir is not None and scen_dir.name in scenario_names()
    scenario = scen_dir.name if scen_dir is not None and named else logged or "unknown"
    benchmark = project_benchmark(scen_dir.parent.name) if scen_dir is not None and named else "unknown"
    system = scen_dir.parents[1].name if scen_dir is not None and named and len(scen_dir.parents) > 1 else d.name
    mode = _MODES.get(str(v.get("effective_test_mode") or ""), "performance")
    artifact = _system_description(scen_dir) if scen_dir is not None else {}
    res = RunResult(
        run_id=system,
        scenario=scenario,
        mode=mode,
        benchmark=benchmark,
        preset=MLPERF_LOGS_PRESET,
        submittable=False,
        harness_version=f"mlcommons-loadgen {v.get('loadgen_version', '?')} (MLPerf logs; no lpuperf records)",
        log_dir=str(d),
        artifact=artifact,
    )
    queries = _count(v, "result_query_count", "generated_query_count")
    if queries is not None:  # samples, as lpuperf counts them (an Offline query holds them all)
        res.n_queries = queries * (_count(v, "generated_samples_per_query", "effective_samples_per_query") or 1)
    fill_from_detail(res, detail, parse_summary_token_latencies(d))
    return res
