"""``lpuperf history``: the run store over time (list, show, trend, regressions, mark-good, import, report).

The store is found as the commands that record find it: ``--db``, else ``$LPUPERF_DB``, else
``OUT/lpuperf.db`` (``--out``, default results).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli._args import out_file_arg, relative_tolerance_arg
from cli._record import add_db_arg
from common import UsageError

if TYPE_CHECKING:
    from history import RunFilter, Store, StoredRun

_RELATIVE = re.compile(r"^(\d+)\s*([hdw])$")


def since_arg(text: str) -> datetime:
    """A date (2025-01-31), an ISO time (2025-01-31T12:00), or an age: 12h, 7d, 2w."""
    m = _RELATIVE.match(text.strip())
    if m:
        hours = int(m[1]) * {"h": 1, "d": 24, "w": 168}[m[2]]
        return datetime.now(UTC) - timedelta(hours=hours)
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date (2025-01-31), a time or an age (12h, 7d, 2w), got '{text}'"
        ) from None
    return t if t.tzinfo is not None else t.astimezone()


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return int(text)


def _store_args(p: argparse.ArgumentParser) -> None:
    add_db_arg(p)
    p.add_argument(
        "--out", type=Path, default=Path("results"), help="output root whose lpuperf.db is the store (default: results)"
    )


def _filter_args(p: argparse.ArgumentParser, last_help: str = "only the newest N") -> None:
    p.add_argument("--artifact", help="artifact name (the manifest's artifact_id)")
    p.add_argument("--benchmark", help="benchmark profile (embedded, llama2-70b, ...)")
    p.add_argument(
        "--scenario", help="scenario (Server, Offline, ...; a load run's: Concurrency, Rate, Trace, Sessions)"
    )
    p.add_argument(
        "--load",
        dest="load_kind",
        metavar="KIND",
        help="runs beside LoadGen of this load shape (concurrency, rate, trace, sessions)",
    )
    p.add_argument("--mode", help="performance | accuracy | check")
    p.add_argument(
        "--command", dest="recorded_by", metavar="CMD", help="the command that recorded it (run, validate, ...)"
    )
    p.add_argument("--since", type=since_arg, help="runs since a date, time or age (7d)")
    p.add_argument("--last", type=_positive_int, metavar="N", help=last_help)


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tolerance", type=relative_tolerance_arg, default=0.05, help="relative latency/throughput tolerance (0.05)"
    )
    p.add_argument("--confidence", type=float, default=0.95, help="bootstrap confidence level (0.95)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples, 100..20000 (1000)")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "history",
        help="the run store: list, show, trend, regressions against the last good build, import, report",
        description="Every run, accuracy, compliance, validate, gate, find-peak and submission command records "
        "its results in the run store. These commands read it.",
    )
    sub = p.add_subparsers(dest="history_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="recorded runs, oldest first")
    _store_args(ls)
    _filter_args(ls, "only the newest N (default 50)")
    ls.add_argument("--json", action="store_true", help="print the records as JSON")
    ls.set_defaults(func=_store_errors(_list))

    show = sub.add_parser("show", help="everything recorded about one run")
    show.add_argument("run", metavar="RUN", help="record number (12 or #12) or run id")
    _store_args(show)
    show.add_argument("--json", action="store_true", help="print the record as JSON")
    show.set_defaults(func=_store_errors(_show))

    tr = sub.add_parser("trend", help="one metric over time or over builds, with each run's confidence interval")
    tr.add_argument("metric", metavar="METRIC", help="e.g. ttft_ms.p99, tokens_per_second, accuracy.rougeL")
    tr.add_argument("--by", choices=("run", "build"), default="run", help="every run, or each build's newest (run)")
    _store_args(tr)
    _filter_args(tr)
    tr.set_defaults(func=_store_errors(_trend))

    reg = sub.add_parser("regressions", help="each build against the last build marked good (compare's statistics)")
    _store_args(reg)
    _filter_args(reg, "only the newest N builds")
    _compare_args(reg)
    reg.set_defaults(func=_store_errors(_regressions))

    good = sub.add_parser("mark-good", help="mark a run's build as good: the baseline later builds are compared with")
    good.add_argument("run", metavar="RUN", help="record number (12 or #12) or run id")
    good.add_argument("--note", default="", help="why it is good (shown by show)")
    good.add_argument("--undo", action="store_true", help="remove the mark")
    _store_args(good)
    good.set_defaults(func=_store_errors(_mark_good))

    imp = sub.add_parser("import", help="record existing run directories (every results.json under DIR)")
    imp.add_argument(
        "dirs", nargs="+", type=Path, metavar="DIR", help="directory searched for run directories (results.json)"
    )
    _store_args(imp)
    imp.set_defaults(func=_store_errors(_import))

    rep = sub.add_parser("report", help="HTML page: trend plots over builds, regressions highlighted")
    _store_args(rep)
    _filter_args(rep, "only the newest N builds in the regressions")
    _compare_args(rep)
    rep.add_argument("-o", "--output", type=out_file_arg, help="output file (default: OUT/history.html)")
    rep.set_defaults(func=_store_errors(_report))


def _store_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``func`` with a database failure after the store opened (a dropped connection, a locked file) as one
    error line naming the store, like a store that cannot be opened."""

    def run(args: argparse.Namespace) -> int:
        import sqlalchemy as sa

        try:
            return func(args)
        except sa.exc.SQLAlchemyError as exc:
            from history import describe, error_text, store_url

            raise UsageError(f"run store {describe(store_url(args.db, args.out))}: {error_text(exc)}") from None

    return run


def _open(args: argparse.Namespace, create: bool = False) -> Store:
    from history import open_store, store_url

    return open_store(store_url(args.db, args.out), create=create)


def _filter(args: argparse.Namespace, default_last: int | None = None) -> RunFilter:
    from history import RunFilter

    return RunFilter(
        artifact=args.artifact,
        benchmark=args.benchmark,
        scenario=args.scenario,
        load_kind=args.load_kind,
        mode=args.mode,
        command=args.recorded_by,
        since=args.since,
        limit=args.last or default_last,
    )


def _when(t: datetime) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _valid(r: StoredRun) -> str:
    return "-" if r.valid is None else "VALID" if r.valid else "INVALID"


def _result(r: StoredRun) -> str:
    """What a recorded run came to. A stopped run is INTERRUPTED (never VALID or INVALID: it did not run its
    course); a compliance pass is its checks' verdict (TEST06 PASS), since LoadGen's performance validity is
    not what it tests (its short pass is often INVALID); any other run is LoadGen's VALID/INVALID."""
    if r.state and r.state != "complete":
        return r.state.upper()
    if r.command == "compliance":
        checks = [v for v in r.verdicts if v.kind == "compliance" and v.command == r.command]
        failed = [v.name for v in checks if not v.passed]
        if checks:
            return f"{failed[0]} FAIL" if failed else f"{checks[0].name} PASS"
    return _valid(r)


def _what(r: StoredRun) -> str:
    """What a run of a search was (a find-peak record is its confirm run, at the peak it confirmed); ''."""
    if r.command != "find-peak":
        return ""
    peak = r.metric("peak_qps")
    return f"confirm at {_num(peak.value)} qps" if peak is not None else "confirm run"


def _run_label(r: StoredRun) -> str:
    return f"{r.run_id} {_what(r)}".strip()


def _list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        runs = store.runs(_filter(args, default_last=50))
    if args.json:
        print("[" + ",\n".join(r.model_dump_json(exclude={"results", "accuracy", "fidelity"}) for r in runs) + "]")
        return 0
    if not runs:
        print("no records")
        return 0

    def fig(r: StoredRun, name: str) -> str:
        m = r.metric(name)
        return _num(None if m is None else m.value)

    rows = [
        (
            "#",
            "when",
            "command",
            "run id",
            "scenario",
            "mode",
            "artifact",
            "build",
            "result",
            "tok/s",
            "TTFT p99 ms",
            "TPOT p99 ms",
            "good",
        )
    ]
    for r in runs:
        rows.append(
            (
                str(r.id),
                _when(r.run_at),
                r.command,
                _run_label(r),
                r.scenario or "-",
                r.mode or "-",
                r.artifact.name or "-",
                r.artifact.build_key or "-",
                _result(r),
                fig(r, "tokens_per_second"),
                fig(r, "ttft_ms.p99"),
                fig(r, "tpot_ms.p99"),
                "good" if r.good else "",
            )
        )
    print(_columns(rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    from history import ci_text

    with _open(args) as store:
        r = store.get(args.run, documents=args.json)  # the text shows no document: none is read
    if args.json:
        print(r.model_dump_json(indent=2))
        return 0
    a = r.artifact
    lines = [
        f"record #{r.id}: {r.command} '{r.run_id}'{f' ({_what(r)})' if _what(r) else ''} ran {_when(r.run_at)}, "
        f"recorded {_when(r.recorded_at)}"
        + (f"; marked good{f' ({r.good_note})' if r.good_note else ''}" if r.good else ""),
        f"  {r.scenario or '-'} {r.mode or '-'}, benchmark {r.benchmark or '-'}, preset {r.preset or '-'}: {_result(r)}"
        + (f" (LoadGen {_valid(r)})" if _result(r) != _valid(r) and r.valid is not None else ""),
    ]
    if r.load_kind:
        lines.append(f"    load {r.load_kind}: --load {r.load_spec} (not an MLPerf LoadGen run)")
    lines += [f"    reason: {x}" for x in r.validity_reasons]
    lines.append(f"  artifact {a.name or '-'} ({a.backend or '-'}, {a.model or '-'}, {a.precision or '-'})")
    lines.append(f"    build {a.build_key or '-'}  manifest sha256 {a.manifest_sha256 or '-'}")
    for label, value in (("toolchain", a.toolchain_version), ("target", a.target), ("checksum", a.checksum)):
        if value:
            lines.append(f"    {label} {value}")
    lines += [f"    {k} {v}" for k, v in sorted(a.build.items())]
    lines.append(f"  run directory {r.run_dir or '-'}")
    lines.append(f"  lpuperf {r.lpuperf_version or '?'}, mlcommons-loadgen {r.loadgen_version or '?'}")
    if r.metrics:
        rows = [("metric", "value", "unit", "95% CI")] + [
            (m.name, _num(m.value), m.unit, ci_text(m)) for m in r.metrics
        ]
        lines += ["  " + line for line in _columns(rows).splitlines()]
    for v in r.verdicts:
        lines.append(f"  {v.kind} {v.name}: {'PASS' if v.passed else 'FAIL'} {v.message}".rstrip() + f" ({v.command})")
    print("\n".join(lines))
    return 0


def _trend(args: argparse.Namespace) -> int:
    from history import ci_text, trend

    with _open(args) as store:
        points = trend(store, args.metric, _filter(args), args.by)
    if not points:
        print(f"no run matching the filters has {args.metric}")
        return 0
    unit = points[-1].value.unit
    rows = [("when", "#", "run id", "artifact", "build", args.metric + (f" ({unit})" if unit else ""), "95% CI")]
    for p in points:
        r = p.run
        rows.append(
            (
                _when(r.run_at),
                str(r.id),
                r.run_id,
                r.artifact.name or "-",
                r.artifact.build_key or "-",
                _num(p.value.value),
                ci_text(p.value),
            )
        )
    print(_columns(rows))
    return 0


def _compare_config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from common import first_error_line
    from workflows import CompareConfig

    try:
        return CompareConfig(tolerance=args.tolerance, confidence=args.confidence, resamples=args.resamples)
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "options").replace("field '", "option '--")) from None


def _regressions(args: argparse.Namespace) -> int:
    from history import build_regressions

    cfg = _compare_config(args)
    with _open(args) as store:
        found = build_regressions(store, _filter(args), cfg)
    if not found:
        print("no recorded runs match")
        return 0
    for c in found:
        print(c.headline())
        if c.comparison is not None:
            for m in c.comparison.regressions:
                print(f"  REGRESSION {m.line}")
    n = sum(1 for c in found if c.regressed)
    print(f"regressions: {n} of {len(found)} build(s) regressed against the last good build")
    return 0


def _mark_good(args: argparse.Namespace) -> int:
    with _open(args) as store:
        r = store.get(args.run, documents=False)
        store.mark_good(r.id, args.note, good=not args.undo)
    what = "no longer marked good" if args.undo else "marked good"
    print(f"#{r.id} ({r.artifact.name or '-'} build {r.artifact.build_key or '-'}, {r.run_id}): {what}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from history import import_runs

    for d in args.dirs:
        if not d.is_dir():
            raise UsageError(f"{d}: not a directory")
    with _open(args, create=True) as store:
        for d in args.dirs:
            out = import_runs(store, d)
            for line in out.skipped:
                print(f"skipped {line}")
            attached = f", {out.compliance_attached} compliance result(s) attached" if out.compliance_attached else ""
            print(
                f"{d}: {out.stored} run(s) stored in {store.where} ({out.new} new, {out.stored - out.new} already "
                f"there){attached}, {len(out.skipped)} skipped"
            )
    return 0


def _report(args: argparse.Namespace) -> int:
    from history import build_regressions, write_history_report

    cfg = _compare_config(args)
    flt = _filter(args)
    with _open(args) as store:
        runs = store.runs(flt.model_copy(update={"limit": None}))
        comparisons = build_regressions(store, flt, cfg)
        where = store.where
    path = write_history_report(args.output or args.out / "history.html", runs, comparisons, where)
    print(path)
    return 0
