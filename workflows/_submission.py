"""MLPerf submission directory: build it from finished runs (the check is workflows._submission_check).

Layout, as MLPerf's submission checker expects it::

    <division>/<submitter>/systems/<system>.json
    <division>/<submitter>/results/<system>/<benchmark>/<scenario>/
        accuracy/{accuracy.txt, mlperf_log_accuracy.json (<= 10 KiB), mlperf_log_detail.txt, mlperf_log_summary.txt}
        performance/run_1/{mlperf_log_summary.txt, mlperf_log_detail.txt}
        TEST06/{verify_accuracy.txt, accuracy/mlperf_log_accuracy.json}
        TEST07/{verify_accuracy.txt, accuracy/{accuracy.txt, mlperf_log_accuracy.json}, performance/run_1/}
        TEST09/{verify_output_len.txt, accuracy/{accuracy.txt, mlperf_log_accuracy.json}, performance/run_1/}
        user.conf  measurements.json  README.md

Each benchmark carries the compliance tests its MLPerf rules name (TEST06 for the Llama models and
deepseek-r1, TEST07 and TEST09 for gpt-oss-120b, none for llama3.1-8b-edge). TEST06's accuracy log is
copied whole: MLPerf truncates only the accuracy logs of ``accuracy/`` and TEST01/07/09, whose
``accuracy.txt`` then holds only the full log's hash (``truncate_accuracy_log.py``). Per-model rules (min duration, token-latency limits) come from LoadGen's embedded
mlperf.conf, read in a child process because loading a conf twice in one process invalidates a
later run there.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from common import (
    BackendSpec,
    RunId,
    file_sha256,
    first_error_line,
    read_json_object,
    write_atomic,
)
from loadgen_harness import RunResult, TransportSecurity, load_results, parse_detail_log
from scenarios import MlperfRules, ScenarioName

if TYPE_CHECKING:
    from scenarios import BenchmarkProfile
    from workflows._session import RunStep
    from workflows._submission_check import CheckReport

MAX_ACCURACY_LOG_BYTES = 10 * 1024
HASH_LINE = re.compile(r"^hash=[0-9a-f]{64}$", re.MULTILINE)
# Rules for every LLM benchmark, whatever LoadGen's conf says about a model it does not know.
LLM_MIN_DURATION_MS = 600_000


class SubmissionError(ValueError):
    """A run needed for the submission is missing or unusable; one line naming the path."""


class SystemDescription(BaseModel):
    """systems/<system>.json: MLPerf's system description, filled from the artifact manifest and flags."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)

    division: str
    submitter: str
    status: str = "available"
    system_name: str
    system_type: str = "datacenter"
    number_of_nodes: int = 1
    host_processor_model_name: str = ""
    host_processors_per_node: int = 1
    host_processor_core_count: int = 0
    host_memory_capacity: str = ""
    host_storage_capacity: str = ""
    host_networking: str = "loopback"
    accelerator_model_name: str = ""
    accelerators_per_node: int = 1
    accelerator_memory_capacity: str = ""
    framework: str = ""
    operating_system: str = ""
    other_software_stack: str = ""
    sw_notes: str = ""
    hw_notes: str = ""
    # The rest of MLPerf's required fields; what the host cannot tell is filled by _submission_system.
    host_storage_type: str = ""
    host_processor_frequency: str = ""
    host_processor_caches: str = ""
    host_memory_configuration: str = ""
    host_processor_interconnect: str = ""
    host_networking_topology: str = ""
    host_network_card_count: str = ""
    accelerator_frequency: str = ""
    accelerator_host_interconnect: str = ""
    accelerator_interconnect: str = ""
    accelerator_interconnect_topology: str = ""
    accelerator_memory_configuration: str = ""
    accelerator_on_chip_memories: str = Field(default="", alias="accelerator_on-chip_memories")
    cooling: str = ""
    system_type_detail: str = ""
    artifact: dict[str, JsonValue] = Field(default_factory=dict)  # the manifest the results were measured on


class Measurements(BaseModel):
    """measurements.json: MLPerf's fields plus the lpuperf_* ones the checker reads back."""

    model_config = ConfigDict(extra="allow")

    input_data_types: str = ""
    retraining: str = ""
    starting_weights_filename: str = ""
    weight_data_types: str = ""
    weight_transformations: str = ""
    lpuperf_preset: str = ""
    lpuperf_submittable: bool | None = None
    lpuperf_run_id: str = ""


class SubmissionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    division: Literal["closed", "open"] = "closed"
    submitter: str = Field(default="lpuperf", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    system: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    status: Literal["available", "preview", "rdi"] = "available"
    system_type: Literal["datacenter", "edge"] = "datacenter"
    system_desc: Path | None = Field(default=None, description="a filled `submission init-system` template")


# --- MLPerf log reading ------------------------------------------------------------------------


def read_detail_log(path: Path) -> dict[str, JsonValue]:
    """``:::MLLOG {json}`` lines -> {key: value}; the last value of a repeated key wins."""
    return dict(parse_detail_log(path).values)


def mlperf_rules(benchmark: str, scenario: str) -> MlperfRules:
    """LoadGen's own defaults for (benchmark, scenario): seeds, min duration, token-latency limits.

    ``benchmark`` is a project profile or an MLPerf directory name (``llama2-70b-99.9``); LoadGen's conf
    is asked under its own model name (``llama2-70b``, ``-interactive`` for the Interactive scenario).
    """
    from scenarios import UserConfError, mlperf_conf_defaults, mlperf_model

    model = mlperf_model(benchmark, scenario)
    try:
        return mlperf_conf_defaults(model, _loadgen_scenario(scenario))
    except UserConfError as exc:  # also LoadGen's values failing MlperfRules: one line naming model/scenario
        raise SubmissionError(str(exc)) from None


def mlperf_benchmark_dir(benchmark: str) -> str:
    """The results/<system>/<benchmark> name MLPerf's checker knows (``llama3.1-8b``); a profile without one
    (lpuperf's ``embedded``) keeps its own name."""
    from scenarios import BENCHMARKS

    profile = BENCHMARKS.get(benchmark)
    return profile.checker_model if profile is not None and profile.checker_model else benchmark


def _is_mlperf_dir(name: str) -> bool:
    from scenarios import MLPERF_BENCHMARK_DIRS

    return name in MLPERF_BENCHMARK_DIRS


def _as_int(value: JsonValue) -> int | None:
    """A detail-log number (LoadGen writes some as strings); None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:  # int() first: a 64-bit seed does not survive a float
            return int(value)
        except ValueError:
            try:
                return int(float(value))
            except ValueError:
                return None
    return None


def _loadgen_scenario(scenario: str) -> str:
    """LoadGen's name for a scenario; a directory name no plugin knows is passed through for the checker."""
    from common import RegistryError
    from scenarios import loadgen_scenario

    try:
        return loadgen_scenario(scenario)
    except RegistryError:
        return scenario


# --- building ----------------------------------------------------------------------------------


def truncate_accuracy_log(src: Path, dst: Path, limit: int = MAX_ACCURACY_LOG_BYTES) -> None:
    """Copy, cut to ``limit`` bytes as MLPerf's truncation does (head and tail kept, marker between)."""
    data = src.read_bytes()
    if len(data) > limit:
        marker = b"\n...truncated...\n"
        half = (limit - len(marker)) // 2
        data = data[:half] + marker + data[-half:]
    write_atomic(dst, data)


def _load_run_results(run_dir: Path) -> RunResult:
    """results.json of a finished run; SubmissionError naming the file (and field) otherwise."""
    path = run_dir / "results.json"
    try:
        return load_results(path)
    except FileNotFoundError:
        raise SubmissionError(f"{path}: required file not found (run results)") from None
    except ValidationError as exc:
        raise SubmissionError(first_error_line(exc, f"{path} (run results)")) from None


def _copy(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise SubmissionError(f"{src}: required file not found")
    write_atomic(dst, src.read_bytes())


def _memory_gib() -> str:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return f"{pages * size / 2**30:.0f} GB"
    except (ValueError, OSError, AttributeError):
        return ""


def system_description(cfg: SubmissionConfig, system: str, artifact: dict[str, JsonValue]) -> SystemDescription:
    """MLPerf system fields from the artifact manifest (accelerator, toolchain) and the host."""
    timing = artifact.get("timing")
    timing = timing if isinstance(timing, dict) else {}
    return SystemDescription(
        division=cfg.division,
        submitter=cfg.submitter,
        status=cfg.status,
        system_name=system,
        system_type=cfg.system_type,
        host_processor_model_name=platform.processor() or platform.machine(),
        host_processor_core_count=os.cpu_count() or 0,
        host_memory_capacity=_memory_gib(),
        accelerator_model_name=str(artifact.get("target") or artifact.get("backend") or "unknown"),
        accelerator_memory_capacity="",
        framework=str(artifact.get("toolchain_version") or ""),
        operating_system=f"{platform.system()} {platform.release()}",
        other_software_stack=f"python {platform.python_version()}; lpuperf harness",
        sw_notes=f"artifact {artifact.get('artifact_id', '?')} checksum {artifact.get('checksum', '')}",
        hw_notes=(
            f"precision {artifact.get('precision', '?')}, max_batch {artifact.get('max_batch', '?')}, "
            f"max_context_tokens {artifact.get('max_context_tokens', '?')}"
            + (f", decode_step_s {timing.get('decode_step_s')}" if timing else "")
        ),
        artifact=artifact,
    )


def _copy_perf_mode_test(src: Path, dst: Path, verify_name: str) -> None:
    """A TEST07/TEST09 directory as MLPerf submits it: the verify file, the performance logs, and the accuracy
    log truncated with ``accuracy/accuracy.txt`` holding the full log's hash."""
    _copy(src / verify_name, dst / verify_name)
    log = src / "accuracy" / "mlperf_log_accuracy.json"
    if not log.is_file():
        raise SubmissionError(f"{src}: no accuracy log (accuracy/mlperf_log_accuracy.json)")
    write_atomic(dst / "accuracy" / "accuracy.txt", f"hash={file_sha256(log)}\n")
    truncate_accuracy_log(log, dst / "accuracy" / "mlperf_log_accuracy.json")
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        if (src / "performance" / "run_1" / name).is_file():
            _copy(src / "performance" / "run_1" / name, dst / "performance" / "run_1" / name)


def build_submission(
    out_root: str | Path,
    performance_dir: str | Path,
    accuracy_dir: str | Path,
    test06_dir: str | Path | None,
    cfg: SubmissionConfig | None = None,
    user_conf: str | Path | None = None,
    test07_dir: str | Path | None = None,
    test09_dir: str | Path | None = None,
) -> Path:
    """Lay finished runs out in MLPerf's tree; return the scenario directory."""
    cfg = cfg or SubmissionConfig()
    perf, acc = Path(performance_dir), Path(accuracy_dir)
    results = _load_run_results(perf)
    artifact = dict(results.artifact)
    if not artifact and (perf / "artifact.json").is_file():
        artifact = read_json_object(perf / "artifact.json", "artifact manifest", SubmissionError)
    system = cfg.system or re.sub(r"[^A-Za-z0-9_.-]+", "_", str(artifact.get("artifact_id") or "lpuperf-system"))
    benchmark, scenario = mlperf_benchmark_dir(results.benchmark), results.scenario
    sub_root = Path(out_root) / cfg.division / cfg.submitter
    scen = sub_root / "results" / system / benchmark / scenario
    # Performance: only the logs the checker reads.
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        _copy(perf / name, scen / "performance" / "run_1" / name)
    # Accuracy: the logs, the score file with the full log's hash, and the truncated log.
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        _copy(acc / name, scen / "accuracy" / name)
    full_log = acc / "mlperf_log_accuracy.json"
    if not full_log.is_file():
        raise SubmissionError(f"{full_log}: required file not found (run the accuracy mode first)")
    acc_txt = acc / "accuracy.txt"
    if not acc_txt.is_file():
        raise SubmissionError(f"{acc_txt}: required file not found (score the accuracy log with lpuperf accuracy)")
    text = acc_txt.read_text(encoding="utf-8")
    if not HASH_LINE.search(text):
        # MLPerf's truncation tool records the hash of the full log before cutting it.
        text = text.rstrip("\n") + f"\nhash={file_sha256(full_log)}\n"
    write_atomic(scen / "accuracy" / "accuracy.txt", text)
    truncate_accuracy_log(full_log, scen / "accuracy" / "mlperf_log_accuracy.json")
    if test06_dir is not None:
        t06 = Path(test06_dir)
        _copy(t06 / "verify_accuracy.txt", scen / "TEST06" / "verify_accuracy.txt")
        t06_log = t06 / "accuracy" / "mlperf_log_accuracy.json"
        if not t06_log.is_file():
            t06_log = t06 / "mlperf_log_accuracy.json"
        if not t06_log.is_file():
            raise SubmissionError(f"{t06}: no TEST06 accuracy log (accuracy/mlperf_log_accuracy.json)")
        # Whole: MLPerf truncates the accuracy logs of accuracy/ (and TEST01/07/09), never TEST06's.
        _copy(t06_log, scen / "TEST06" / "accuracy" / "mlperf_log_accuracy.json")
    if test07_dir is not None:
        _copy_perf_mode_test(Path(test07_dir), scen / "TEST07", "verify_accuracy.txt")
    if test09_dir is not None:
        _copy_perf_mode_test(Path(test09_dir), scen / "TEST09", "verify_output_len.txt")
    conf = Path(user_conf) if user_conf else None
    # MLPerf refuses an empty user.conf; runs without one used mlperf.conf's values alone, and it says so.
    conf_text = conf.read_text(encoding="utf-8") if conf and conf.is_file() else ""
    write_atomic(scen / "user.conf", conf_text or "# no user.conf: the runs used LoadGen's mlperf.conf values\n")
    measurements = Measurements(
        input_data_types="int32 token ids",
        retraining="no",
        starting_weights_filename=str(artifact.get("model", "")),
        weight_data_types=str(artifact.get("precision", "")),
        weight_transformations=f"compiled artifact {artifact.get('artifact_id', '')}",
        lpuperf_preset=results.preset,
        lpuperf_submittable=results.submittable,
        lpuperf_run_id=results.run_id,
    )
    write_atomic(scen / "measurements.json", measurements.model_dump_json(indent=2) + "\n")
    label = "" if results.submittable else "\n**Not submittable**: quick preset (short durations).\n"
    if benchmark == results.benchmark and not _is_mlperf_dir(benchmark):
        label += (
            f"\n**Not an MLPerf submission**: `{benchmark}` is lpuperf's own benchmark, not one of MLPerf's; "
            "this tree rehearses the layout and the checks.\n"
        )
    readme = (
        f"# {benchmark} {scenario} on {system}\n{label}\n"
        f"Produced by `lpuperf` (preset `{results.preset}`, run `{results.run_id}`).\n"
        f"Artifact `{artifact.get('artifact_id', '?')}` ({artifact.get('precision', '?')}), "
        f"result {'VALID' if results.valid else 'INVALID'}.\n\n"
        "Reproduce with `make submission PRESET=submission`.\n"
    )
    write_atomic(scen / "README.md", readme)
    from workflows._submission_system import complete_system, write_code_folder

    desc = complete_system(system_description(cfg, system, artifact), cfg.system_desc)
    write_atomic(sub_root / "systems" / f"{system}.json", desc.model_dump_json(indent=2, by_alias=True) + "\n")
    write_code_folder(sub_root, results)
    return scen


# --- running everything a submission needs -----------------------------------------------------


class SubmissionRunConfig(BaseModel):
    """One scenario's runs for ``make submission``; ``sut=None`` spawns one embedded SUT for all of them."""

    model_config = ConfigDict(extra="forbid")

    scenario: ScenarioName = "Server"
    benchmark: str = "embedded"
    dataset: str | None = None
    preset: Literal["quick", "submission"] = "quick"
    sut: str | None = None
    transport: TransportSecurity = Field(
        default_factory=TransportSecurity, description="TLS, client certificate and token for a running SUT (sut)"
    )
    backend: BackendSpec = Field(default_factory=dict, description="spawned SUT's backend config (SutTarget)")
    qps: float | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, gt=0)
    test06_qps: float | None = Field(default=None, gt=0, description="TEST06 rate; None = qps")
    out_dir: Path = Path("results")
    run_id: RunId = "submission"
    submission_dir: Path | None = None
    user_conf: Path | None = None


def run_submission(
    run: SubmissionRunConfig, cfg: SubmissionConfig, echo: Callable[[str], None] = print
) -> tuple[Path, CheckReport]:
    """Performance, accuracy (scored) and compliance runs on one SUT, then the tree and its check.

    The compliance tests are the benchmark's (TEST06, or TEST07 and TEST09 for gpt-oss-120b). The performance and accuracy passes each run in a process of their own with a user.conf, as an
    MLPerf submission does: LoadGen applies its mlperf.conf (default seeds) only through FromConfig,
    and counts FromConfig calls per process.
    """
    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness import RunError, SutTarget, launch_sut
    from scenarios import embedded_sut_backend, get_benchmark
    from workflows._compliance_runs import required_checks
    from workflows._session import RunStep, SessionConfig, run_session

    bench = get_benchmark(run.benchmark)
    model = bench.loadgen_model_for(run.scenario)
    # MLPerf runs no compliance test in the open division.
    checks = required_checks(run.benchmark) if cfg.division != "open" else ()
    backend, notes = embedded_sut_backend(bench, run.preset, run.backend)
    # The spawned SUT serves the benchmark's dataset (a reasoning sim's set, at the preset's scale).
    dataset = run.dataset or (None if run.sut else submission_dataset(bench, run.preset))
    user_conf = run.user_conf or Path(run.out_dir) / run.run_id / run.scenario / "user.conf"
    conf_qps = performance_step(run).qps
    session = SessionConfig(
        run_id=run.run_id,
        benchmark=run.benchmark,
        dataset=dataset,
        preset=run.preset,
        out_dir=run.out_dir,
        user_conf=user_conf,
        transport=run.transport,
        performance=[performance_step(run)],
        accuracy=RunStep(name="accuracy", scenario=run.scenario, qps=conf_qps),
        test06=RunStep(name="TEST06", scenario=run.scenario, qps=run.test06_qps or run.qps)
        if "TEST06" in checks
        else None,
        test07=RunStep(name="TEST07", scenario=run.scenario, qps=run.qps) if "TEST07" in checks else None,
        test09=RunStep(name="TEST09", scenario=run.scenario, qps=run.qps) if "TEST09" in checks else None,
    )
    try:
        target = SutTarget(
            address=run.sut,
            backend={} if run.sut else backend,
            dataset=dataset,
            transport=run.transport,
        )
    except ValidationError as exc:
        raise RunError(first_error_line(exc, "sut")) from None
    with launch_sut(target) as running:
        if run.user_conf is None:
            # Written once the SUT answered: a submission refused before it starts leaves nothing behind.
            write_atomic(user_conf, _user_conf_text(run, model))
        for note in notes:
            echo(f"[submission] {note}")
        result = run_session(session, running.address, echo, label="submission")
    perf, acc = result.performance["performance"], result.accuracy_run
    assert acc is not None  # without keep_going a failing step raised
    root = run.submission_dir or Path(run.out_dir) / run.run_id / "submission"
    t06, t07, t09 = result.test06, result.test07, result.test09
    scen = build_submission(
        root,
        Path(perf.log_dir),
        Path(acc.log_dir),
        Path(t06.test06_dir) if t06 is not None else None,
        cfg,
        user_conf,
        test07_dir=Path(t07.test07_dir) if t07 is not None else None,
        test09_dir=Path(t09.test09_dir) if t09 is not None else None,
    )
    from workflows._submission_check import check_submission

    return scen, check_submission(root)


def performance_step(run: SubmissionRunConfig) -> RunStep:
    """The performance run's step. The rate goes into the user.conf lpuperf writes, as a submitter's does;
    given again as an override it would mark the run not submittable. With the submitter's own user.conf,
    ``qps`` stays an override (that file may not hold it)."""
    from workflows._session import RunStep

    qps = run.qps if run.user_conf is not None else None
    return RunStep(name="performance", scenario=run.scenario, qps=qps, duration_s=run.duration_s)


def check_dataset_coverage(run: SubmissionRunConfig) -> None:
    """A submission-preset run of an MLPerf benchmark must serve the whole dataset: refused before it starts
    when the dataset has fewer samples than the round's accuracy run covers (a quick run only rehearses)."""
    from scenarios import DatasetError, get_benchmark, resolve_dataset

    bench = get_benchmark(run.benchmark)
    rules = bench.rules
    if run.preset != "submission" or rules is None or run.sut is not None:
        return
    spec = run.dataset or submission_dataset(bench, run.preset)
    try:
        n = len(resolve_dataset(spec))
    except DatasetError as exc:
        raise SubmissionError(f"dataset {spec}: {exc}") from None
    if n < rules.accuracy_sample_count:
        raise SubmissionError(
            f"dataset {spec}: {n} samples; {rules.checker_model}'s accuracy run covers {rules.accuracy_sample_count} "
            f"(omit --dataset for a synthetic set of that size)"
        )


def submission_dataset(bench: BenchmarkProfile, preset: str) -> str:
    """The spawned sim's dataset: for an MLPerf benchmark's submission preset, a synthetic set of the
    benchmark's size (its accuracy run must cover that many samples); else the benchmark's own."""
    from scenarios import embedded_dataset

    rules = bench.rules
    if preset == "submission" and rules is not None and not bench.reasoning:
        return f"synthetic:{rules.accuracy_sample_count}"
    return embedded_dataset(bench, preset)


def _user_conf_text(run: SubmissionRunConfig, loadgen_model: str) -> str:
    """The user.conf the runs load: only the rate the submitter chose; everything else stays MLPerf's."""
    lines = [f"# lpuperf submission run {run.run_id} (preset {run.preset})"]
    if run.qps is not None:
        lines.append(f"{loadgen_model}.{_loadgen_scenario(run.scenario)}.target_qps = {run.qps:g}")
    return "\n".join(lines) + "\n"
