"""The run store: every command's results over time, builds compared with the last good one.

Commands record what they produced (``record_outcome``) into SQLite at ``OUT/lpuperf.db`` or a shared
PostgreSQL database (``--db``, ``$LPUPERF_DB``); ``lpuperf history`` lists, shows, trends and compares.

Every name is imported on first use (:func:`common.lazy_exports`): listing or showing records needs the
store and its models only, not the stages whose outcomes are recorded (gate, accuracy, workflows pull
numpy, scipy and nltk; tests/unit/cli/test_cli_latency_imports.py checks it).
"""

from typing import TYPE_CHECKING

from common import lazy_exports

if TYPE_CHECKING:
    from history._extract import percentile_intervals, record_interrupted, record_run_dir
    from history._import import ImportOutcome, import_runs, run_dirs
    from history._models import (
        ArtifactBuild,
        MetricValue,
        RunFilter,
        RunRecord,
        StoredRun,
        Verdict,
        VerdictKind,
        metric_unit,
    )
    from history._outcomes import Outcome, records_for
    from history._record import output_root, record_outcome
    from history._regressions import (
        LAST_GOOD,
        BuildComparison,
        LastGoodCheck,
        build_regressions,
        compare_to_last_good,
        last_good_objectives,
        with_objectives,
    )
    from history._report import render_history, write_history_report
    from history._store import (
        DB_ENV,
        DB_FILE,
        DB_PASSWORD_FILE_ENV,
        Store,
        StoreError,
        describe,
        error_text,
        open_store,
        store_url,
    )
    from history._trend import TrendBy, TrendPoint, ci_text, trend, trend_points

__getattr__ = lazy_exports(
    __name__,
    {
        "history._extract": ["percentile_intervals", "record_interrupted", "record_run_dir"],
        "history._import": ["ImportOutcome", "import_runs", "run_dirs"],
        "history._models": [
            "ArtifactBuild",
            "MetricValue",
            "RunFilter",
            "RunRecord",
            "StoredRun",
            "Verdict",
            "VerdictKind",
            "metric_unit",
        ],
        "history._outcomes": ["Outcome", "records_for"],
        "history._record": ["output_root", "record_outcome"],
        "history._regressions": [
            "LAST_GOOD",
            "BuildComparison",
            "LastGoodCheck",
            "build_regressions",
            "compare_to_last_good",
            "last_good_objectives",
            "with_objectives",
        ],
        "history._report": ["render_history", "write_history_report"],
        "history._store": [
            "DB_ENV",
            "DB_FILE",
            "DB_PASSWORD_FILE_ENV",
            "Store",
            "StoreError",
            "describe",
            "error_text",
            "open_store",
            "store_url",
        ],
        "history._trend": ["TrendBy", "TrendPoint", "ci_text", "trend", "trend_points"],
    },
)

__all__ = [
    "DB_ENV",
    "DB_FILE",
    "DB_PASSWORD_FILE_ENV",
    "LAST_GOOD",
    "ArtifactBuild",
    "BuildComparison",
    "ImportOutcome",
    "LastGoodCheck",
    "MetricValue",
    "Outcome",
    "RunFilter",
    "RunRecord",
    "Store",
    "StoreError",
    "StoredRun",
    "TrendBy",
    "TrendPoint",
    "Verdict",
    "VerdictKind",
    "build_regressions",
    "ci_text",
    "compare_to_last_good",
    "describe",
    "error_text",
    "import_runs",
    "last_good_objectives",
    "metric_unit",
    "open_store",
    "output_root",
    "percentile_intervals",
    "record_interrupted",
    "record_outcome",
    "record_run_dir",
    "records_for",
    "render_history",
    "run_dirs",
    "store_url",
    "trend",
    "trend_points",
    "with_objectives",
    "write_history_report",
]
