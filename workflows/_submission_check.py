"""Check a submission tree the way MLPerf's submission checker would, on lpuperf's trees and anyone else's.

The rules follow MLPerf's, not lpuperf's habits:

* **Seeds** are those of the round the tree was made for (``version``, :data:`scenarios.MLPERF_ROUND_SEEDS`).
  Without a round the installed LoadGen's mlperf.conf is the reference (what lpuperf's own runs use);
  a round the table does not hold is not guessed at: seeds are then not checked, and the report says so.
* **TEST06** files and its verdict are required only of the LLM benchmarks MLPerf runs TEST06 on
  (:func:`scenarios.requires_test06`); token latencies only where LoadGen's conf asks for them.
* **TEST07** / **TEST09** (gpt-oss-120b): ``TEST07/verify_accuracy.txt`` / ``TEST09/verify_output_len.txt``
  must exist and contain ``TEST PASS``, which is all MLPerf's checker reads from them.
* **Accuracy logs over 10 KiB** are findings only where MLPerf truncates them: ``accuracy/`` and the
  ``TEST01``/``TEST07``/``TEST09`` accuracy logs. TEST06's log is kept whole.
* **lpuperf's own label** ("preset not submittable") applies only to trees lpuperf built; it knows
  them by the ``lpuperf_*`` fields it writes into measurements.json.
* **The round's table** (``version``, else the current round; ``workflows._submission_rules``): required
  scenarios, sample counts, dataset coverage and accuracy targets for the benchmarks it profiles; system
  description fields, measurements fields and the code folder for every tree. The open division needs
  no compliance tests and no particular scenarios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, JsonValue, ValidationError

from common import UsageError, first_error_line, read_json_object
from scenarios import CURRENT_ROUND, MLPERF_BENCHMARK_DIRS, MlperfRound, ModelRules
from workflows._submission import (
    HASH_LINE,
    LLM_MIN_DURATION_MS,
    MAX_ACCURACY_LOG_BYTES,
    Measurements,
    _as_int,
    _loadgen_scenario,
    mlperf_rules,
    read_detail_log,
)
from workflows._submission_rules import (
    MEASUREMENTS_REQUIRED_FIELDS,
    NON_EMPTY_FILES,
    accuracy_findings,
    blank,
    code_folders,
    missing_scenarios,
    read_system,
    round_rules,
    sample_count_findings,
    system_findings,
    system_type_of,
    unknown_scenarios,
)

EARLY_STOPPING_SCENARIOS = ("Server", "SingleStream", "MultiStream")
_SEED_KEYS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")
_REQUIRED = (
    "accuracy/accuracy.txt",
    "accuracy/mlperf_log_accuracy.json",
    "accuracy/mlperf_log_detail.txt",
    "accuracy/mlperf_log_summary.txt",
    "performance/run_1/mlperf_log_summary.txt",
    "performance/run_1/mlperf_log_detail.txt",
    "user.conf",
    "measurements.json",
    "README.md",
)
_REQUIRED_TEST06 = ("TEST06/verify_accuracy.txt", "TEST06/accuracy/mlperf_log_accuracy.json")
# The accuracy logs MLPerf's truncation tool cuts to 10 KiB (keeping the full log's hash); TEST06's it leaves whole.
TRUNCATED_ACCURACY_LOGS = (
    "accuracy/mlperf_log_accuracy.json",
    "TEST01/accuracy/mlperf_log_accuracy.json",
    "TEST07/accuracy/mlperf_log_accuracy.json",
    "TEST09/accuracy/mlperf_log_accuracy.json",
)
_TEST06_LINES = ("First token check pass: ", "EOS check pass: ", "Sample length check pass: ")
# The verify file MLPerf's checker reads for each test that needs every sample logged in performance mode.
_PERF_MODE_VERIFY = {"TEST07": "TEST07/verify_accuracy.txt", "TEST09": "TEST09/verify_output_len.txt"}


class Finding(BaseModel):
    code: str
    path: str
    message: str

    @property
    def line(self) -> str:
        return f"[{self.code}] {self.path}: {self.message}"


class CheckReport(BaseModel):
    root: str
    version: str | None = Field(default=None, description="the MLPerf round the tree was checked against")
    scenarios_checked: int = 0
    findings: list[Finding] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="what was not checked, and why")

    @property
    def passed(self) -> bool:
        return not self.findings


class SeedRule(BaseModel):
    """Where the expected seeds come from: a round's table entry, the installed LoadGen's conf, or nowhere."""

    source: str
    kind: Literal["round", "loadgen", "unchecked"]
    seeds: dict[str, int] = Field(default_factory=dict, description="a round's seeds (kind 'round')")


def seed_rule(version: str | None) -> tuple[SeedRule, str]:
    """The seeds a tree is held to, and the note saying so."""
    from scenarios import MLPERF_ROUND_SEEDS, round_name, round_seeds

    if version is None:
        return SeedRule(source="the installed LoadGen's mlperf.conf", kind="loadgen"), (
            "seeds checked against the installed LoadGen's mlperf.conf; name the tree's round with --version "
            f"(known: {', '.join(MLPERF_ROUND_SEEDS)})"
        )
    seeds = round_seeds(version)
    if seeds is None:
        return SeedRule(source=f"round {version}", kind="unchecked"), (
            f"round '{version}' unknown: seeds not checked (known: {', '.join(MLPERF_ROUND_SEEDS)})"
        )
    name = round_name(version)
    rule = SeedRule(source=f"MLPerf {name}", kind="round", seeds=seeds.model_dump())
    return rule, f"seeds checked against MLPerf {name}'s"


def _truthy(v: JsonValue) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() in ("true", "1")) or v == 1


def benchmark_token_limits_ns(
    benchmark: str, scenario: str, detail: dict[str, JsonValue]
) -> tuple[int | None, int | None]:
    """TTFT/TPOT p99 limits: MLPerf's for models LoadGen knows, else the project's benchmark profile."""
    from scenarios import get_benchmark, project_benchmark

    rules = mlperf_rules(benchmark, scenario)
    if rules.use_token_latencies and rules.ttft_latency is not None and rules.tpot_latency is not None:
        return rules.ttft_latency, rules.tpot_latency
    try:  # the project's own benchmarks (e.g. "embedded") define their limits in scenarios
        limits = get_benchmark(project_benchmark(benchmark)).limits_for(scenario)
        if limits is not None:
            return int(limits[0] * 1e6), int(limits[1] * 1e6)
    except (ValueError, LookupError):
        pass  # an unknown benchmark or scenario falls back to the limits the run itself asked for
    ttft, tpot = _as_int(detail.get("requested_ttft_latency")), _as_int(detail.get("requested_tpot_latency"))
    return ttft or None, tpot or None


def uses_token_latencies(benchmark: str, scenario: str) -> bool:
    """LLM benchmarks: LoadGen's conf sets use_token_latencies for MLPerf's; every project profile is an LLM."""
    from scenarios import BENCHMARKS

    return benchmark in BENCHMARKS or mlperf_rules(benchmark, scenario).use_token_latencies


class _Find:
    """Adds a finding for a path relative to the scenario directory."""

    def __init__(self, rel: str, out: list[Finding]) -> None:
        self.rel, self.out = rel, out

    def __call__(self, code: str, path: str, msg: str) -> None:
        self.out.append(Finding(code=code, path=f"{self.rel}/{path}" if path else self.rel, message=msg))


def _measurements(scen: Path, find: _Find) -> Measurements | None:
    """measurements.json; None when it is missing or unreadable (a finding names why)."""
    path = scen / "measurements.json"
    if not path.is_file():
        return None
    try:
        return Measurements.model_validate(read_json_object(path, "measurements"))
    except UsageError:
        find("bad-file", "measurements.json", "not a valid JSON object")
    except ValidationError as exc:
        find("bad-file", "measurements.json", first_error_line(exc, "measurements.json").partition(": ")[2])
    return None


def is_lpuperf_tree(meas: Measurements | None) -> bool:
    """lpuperf writes its lpuperf_* fields into every measurements.json it builds; nobody else does."""
    return meas is not None and bool(meas.lpuperf_run_id or meas.lpuperf_preset or meas.lpuperf_submittable is not None)


def _check_performance(scen: Path, find: _Find, seeds: SeedRule, meas: Measurements | None) -> None:
    benchmark, scenario = scen.parent.name, scen.name
    rules = mlperf_rules(benchmark, scenario)
    llm = uses_token_latencies(benchmark, scenario)
    d = read_detail_log(scen / "performance" / "run_1" / "mlperf_log_detail.txt")
    p = "performance/run_1/mlperf_log_detail.txt"
    for key in _SEED_KEYS if seeds.kind != "unchecked" else ():
        want = seeds.seeds[key] if seeds.kind == "round" else rules.seed(key)
        got = _as_int(d.get(f"effective_{key}"))
        if got is None or got != want:
            find("seeds", p, f"{key} is {got}, expected {seeds.source}'s {want}")
    floor = LLM_MIN_DURATION_MS if llm else 0
    min_ms = max(rules.min_duration_ms, floor) if scenario != "MultiStream" else 0
    got_ms = _as_int(d.get("effective_min_duration_ms"))
    short = got_ms is not None and got_ms < min_ms
    if is_lpuperf_tree(meas):
        assert meas is not None
        preset = meas.lpuperf_preset
        submittable = meas.lpuperf_submittable if meas.lpuperf_submittable is not None else preset == "submission"
        if not submittable:
            detail_txt = f"; min_duration {got_ms} ms < {min_ms} ms required" if short else ""
            find("not-submittable", "measurements.json", f"preset '{preset or '?'}' is not submittable{detail_txt}")
        elif short or got_ms is None:
            find("min-duration", p, f"min_duration_ms is {got_ms}, rules require >= {min_ms}")
    elif short or got_ms is None:
        find("min-duration", p, f"min_duration_ms is {got_ms}, rules require >= {min_ms}")
    validity = d.get("result_validity")
    if validity != "VALID":
        find("invalid", p, f"result_validity is {validity}, expected VALID")
    # MLPerf judges the latency-bound scenarios by LoadGen's early-stopping verdict.
    if _loadgen_scenario(scenario) in EARLY_STOPPING_SCENARIOS and d.get("early_stopping_met") is False:
        find("early-stopping", p, "early stopping condition not met")
    if not llm:
        return  # LoadGen's own verdict covers a non-LLM's latency bound
    # LoadGen logs only the requested value of this setting; an effective one wins where present.
    token_lat = d.get("effective_use_token_latencies", d.get("requested_use_token_latencies"))
    if not _truthy(token_lat):
        find("token-latencies", p, f"use_token_latencies is {token_lat}, expected 1")
    if _loadgen_scenario(scenario) == "Server":
        ttft_lim, tpot_lim = benchmark_token_limits_ns(benchmark, scenario, d)
        ttft = _as_int(d.get("result_first_token_99.00_percentile_latency_ns"))
        tpot = _as_int(d.get("result_time_per_output_token_99.00_percentile_ns"))
        for what, value, limit in (("TTFT", ttft, ttft_lim), ("TPOT", tpot, tpot_lim)):
            if limit is None:
                continue
            if value is None:
                find("latency", p, f"{what} p99 missing from the log (limit {limit / 1e6:.1f} ms)")
            elif value > limit:
                find("latency", p, f"{what} p99 {value / 1e6:.1f} ms above the {limit / 1e6:.1f} ms limit")


def _check_test06(scen: Path, find: _Find) -> None:
    verify = scen / "TEST06" / "verify_accuracy.txt"
    if not verify.is_file():
        return
    lines = verify.read_text(encoding="utf-8", errors="replace").splitlines()
    for prefix in _TEST06_LINES:
        hit = [ln for ln in lines if ln.startswith(prefix)]
        allowed = ("True", "Skipped") if prefix.startswith("First") else ("True",)
        if not hit or hit[-1][len(prefix) :].strip() not in allowed:
            find("TEST06", "TEST06/verify_accuracy.txt", f"'{prefix.strip()}' is not True")
    if "TEST06 verification complete" not in lines:
        find("TEST06", "TEST06/verify_accuracy.txt", "no 'TEST06 verification complete' line")


def _check_perf_mode_tests(scen: Path, find: _Find, tests: tuple[str, ...]) -> None:
    """TEST07/TEST09: the verify file must say ``TEST PASS`` somewhere (MLPerf's compliance_check)."""
    for test in tests:
        rel = _PERF_MODE_VERIFY[test]
        verify = scen / rel
        if verify.is_file() and "TEST PASS" not in verify.read_text(encoding="utf-8", errors="replace"):
            find(test, rel, "no 'TEST PASS' in the verification file")


def check_scenario(
    scen: Path, rel: str, out: list[Finding], seeds: SeedRule, rules: ModelRules | None = None, division: str = "closed"
) -> None:
    """Every finding for one ``<benchmark>/<scenario>`` directory; ``rules`` are its round's, where known."""
    from scenarios import compliance_tests, requires_test06

    find = _Find(rel, out)
    # MLPerf skips every compliance test in the open division.
    needs_compliance = division != "open"
    test06 = needs_compliance and requires_test06(scen.parent.name)
    tests = compliance_tests(scen.parent.name) if needs_compliance else ()
    perf_mode = tuple(t for t in tests if t in _PERF_MODE_VERIFY)
    required = _REQUIRED + (_REQUIRED_TEST06 if test06 else ()) + tuple(_PERF_MODE_VERIFY[t] for t in perf_mode)
    for name in required:
        if not (scen / name).is_file():
            find("missing-file", name, "required file not found")
    for name in NON_EMPTY_FILES:
        if (scen / name).is_file() and (scen / name).stat().st_size == 0:
            find("empty-file", name, "empty; MLPerf requires content")
    meas = _measurements(scen, find)
    acc_txt = scen / "accuracy" / "accuracy.txt"
    if meas is not None:
        fields = meas.model_dump()
        unanswered = [k for k in MEASUREMENTS_REQUIRED_FIELDS if blank(fields.get(k))]
        if unanswered:
            find("measurements-field", "measurements.json", f"no answer for {', '.join(unanswered)}")
    if (scen / "performance" / "run_1" / "mlperf_log_detail.txt").is_file():
        _check_performance(scen, find, seeds, meas)
    if rules is not None:
        for code, path, msg in sample_count_findings(scen, rules, division):
            find(code, path, msg)
    if rules is not None and division != "open" and acc_txt.is_file():  # MLPerf judges scores in closed only
        for msg in accuracy_findings(acc_txt.read_text(encoding="utf-8", errors="replace"), rules):
            find("accuracy-target", "accuracy/accuracy.txt", msg)
    if acc_txt.is_file() and not HASH_LINE.search(acc_txt.read_text(encoding="utf-8", errors="replace")):
        find("hash", "accuracy/accuracy.txt", "no 'hash=<sha256>' line")
    for log in TRUNCATED_ACCURACY_LOGS:
        f = scen / log
        if f.is_file() and f.stat().st_size > MAX_ACCURACY_LOG_BYTES:
            find("log-size", log, f"{f.stat().st_size} bytes; truncate to <= {MAX_ACCURACY_LOG_BYTES}")
    if test06:
        _check_test06(scen, find)
    _check_perf_mode_tests(scen, find, perf_mode)


def _tree_rules(version: str | None) -> tuple[MlperfRound | None, str]:
    """The round whose table the tree is held to (``version``, else the current round) and the note saying so."""
    from scenarios import get_round

    name = version or CURRENT_ROUND
    rnd = get_round(name)
    if rnd is None:
        return None, (
            f"round '{name}' has no rule table: required scenarios, sample counts and dataset coverage not checked"
        )
    return rnd, f"required scenarios, sample counts and dataset coverage checked against MLPerf {rnd.name}'s table"


class _Tree:
    """Findings made once per submitter, system or benchmark directory, however many scenarios share it."""

    def __init__(self, base: Path, report: CheckReport, version: str | None) -> None:
        self.base, self.report, self.version = base, report, version
        self.seen: set[Path] = set()
        self.systems: dict[Path, dict[str, JsonValue] | None] = {}

    def add(self, code: str, path: Path, msg: str) -> None:
        self.report.findings.append(Finding(code=code, path=str(path.relative_to(self.base)), message=msg))

    def once(self, path: Path) -> bool:
        if path in self.seen:
            return False
        self.seen.add(path)
        return True

    def submitter(self, sub_root: Path) -> None:
        names = code_folders(self.version)
        code = sub_root / names[0]
        if self.once(code) and not any((sub_root / n).is_dir() for n in names):
            self.add("code-folder", code, "no code folder: MLPerf requires the code that produced the results")

    def system(self, sys_file: Path, division: str, submitter: str) -> dict[str, JsonValue] | None:
        if sys_file in self.systems:
            return self.systems[sys_file]
        system = read_system(sys_file) if sys_file.is_file() else None
        self.systems[sys_file] = system
        if not sys_file.is_file():
            self.add("missing-file", sys_file, "system description")
        elif system is None:
            self.add("bad-file", sys_file, "not a JSON object (system description)")
        else:
            for code, msg in system_findings(system, division, submitter):
                self.add(code, sys_file, msg)
        return system

    def benchmark(self, bench_dir: Path, rules: ModelRules | None, division: str, system_type: str) -> None:
        if not self.once(bench_dir):
            return
        if bench_dir.name not in MLPERF_BENCHMARK_DIRS:
            self.add(
                "benchmark", bench_dir, f"'{bench_dir.name}' is not an MLPerf benchmark (lpuperf's own or unknown)"
            )
        if rules is None or division == "open":
            return  # the open division may submit any subset of scenarios
        present = {p.name for p in bench_dir.iterdir() if p.is_dir()}
        missing = missing_scenarios(rules, system_type, present)
        if missing:
            self.add("required-scenario", bench_dir, f"{system_type} needs {', '.join(missing)}")
        unknown = unknown_scenarios(rules, system_type, present)
        if unknown:
            self.add("unknown-scenario", bench_dir, f"{', '.join(unknown)} not a scenario of {rules.checker_model}")


def check_submission(root: str | Path, version: str | None = None) -> CheckReport:
    """Every finding MLPerf's checker would reject (for round ``version``), plus lpuperf's label on its own trees."""
    from workflows._submission import SubmissionError

    base = Path(root)
    rule, note = seed_rule(version)
    report = CheckReport(root=str(base), version=version, notes=[note])
    scen_dirs = sorted(p.parent for p in base.glob("*/*/results/*/*/*/measurements.json"))
    scen_dirs += sorted(
        p.parent.parent for p in base.glob("*/*/results/*/*/*/performance/run_1") if p.parent.parent not in scen_dirs
    )
    if not scen_dirs:
        report.findings.append(
            Finding(code="missing-file", path=str(base), message="no <division>/<submitter>/results/<system>/... tree")
        )
        return report
    rnd, round_note = _tree_rules(version)
    report.notes.append(round_note)
    tree = _Tree(base, report, version)
    for scen in scen_dirs:
        rel = str(scen.relative_to(base))
        division, submitter = scen.relative_to(base).parts[:2]
        if division not in ("closed", "open", "network"):
            report.findings.append(Finding(code="layout", path=rel, message=f"division '{division}' unknown"))
        tree.submitter(scen.parents[3])
        sys_file = scen.parents[3] / "systems" / f"{scen.parent.parent.name}.json"
        system = tree.system(sys_file, division, submitter)
        rules = round_rules(rnd, scen.parent.name)
        tree.benchmark(scen.parent, rules, division, system_type_of(system))
        try:
            check_scenario(scen, rel, report.findings, rule, rules, division)
        except SubmissionError as exc:  # LoadGen's conf could not be read for this benchmark
            report.findings.append(Finding(code="rules", path=rel, message=str(exc)))
        report.scenarios_checked += 1
    return report
