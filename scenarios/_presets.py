"""Scenario presets and the LoadGen TestSettings they produce.

Each scenario is a plugin in :data:`scenario_presets` (see ``scenarios._scenario``) with a pydantic
config. :func:`plan_settings` combines (scenario, benchmark, preset, overrides) into a
:class:`SettingsPlan`, a plain pydantic record of every LoadGen field the harness sets;
:meth:`SettingsPlan.to_test_settings` turns it into ``mlperf_loadgen.TestSettings``.

``quick`` runs are sized so LoadGen's early stopping can still judge them (Server needs roughly
QPS x duration >= 500 queries for a p99 verdict) and are labelled not submittable. ``submission``
uses MLPerf's durations: 600 s minimum, MultiStream 662 queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from common import RegistryError
from scenarios._benchmarks import QUICK_REASONING_SCALE, BenchmarkError, BenchmarkProfile, get_benchmark
from scenarios._conf_supply import ConfSupply, apply_supplied, conf_supply
from scenarios._plugins import get_scenario
from scenarios._scenario import LoadGenScenario, Preset, Scenario, ScenarioName, SettingsOverrides
from scenarios._userconf import SEED_FIELDS, apply_user_conf, mlperf_conf_defaults

Mode = Literal["performance", "accuracy"]
SUBMISSION_MIN_DURATION_S = 600.0
# Names as given (a CLI string) -> the typed value.
_PRESETS: dict[str, Preset] = {"quick": "quick", "submission": "submission"}
_MODES: dict[str, Mode] = {"performance": "performance", "accuracy": "accuracy"}


class SettingsError(ValueError):
    """Invalid scenario/benchmark/preset/override combination; one readable line."""


class SettingsPlan(BaseModel):
    """Every LoadGen TestSettings field the harness sets, plus what it was derived from."""

    model_config = ConfigDict(extra="forbid")

    scenario: ScenarioName
    loadgen_scenario: LoadGenScenario
    mode: Mode
    benchmark: str
    loadgen_model: str
    preset: Preset
    submittable: bool
    min_duration_ms: int
    max_duration_ms: int = 0
    min_query_count: int | None = None
    server_target_qps: float | None = None
    offline_expected_qps: float | None = None
    single_stream_expected_latency_ns: int | None = None
    multi_stream_expected_latency_ns: int | None = None
    multi_stream_samples_per_query: int | None = None
    use_token_latencies: bool = True
    ttft_latency_ns: int | None = None
    tpot_latency_ns: int | None = None
    sample_concatenate_permutation: bool = True
    performance_sample_count_override: int | None = None
    accuracy_sample_count_override: int | None = None
    explicit: list[str] = Field(default_factory=list, description="fields forced by overrides (beat user.conf)")
    round: str | None = Field(default=None, description="the MLPerf round of the benchmark's constants")
    conf_supplied: list[ConfSupply] = Field(
        default_factory=list, description="round keys the installed LoadGen's mlperf.conf lacks: the harness sets them"
    )
    setting_notes: dict[str, str] = Field(
        default_factory=dict, description="setting -> why it differs from the round's (e.g. a smaller dataset)"
    )

    @property
    def samples_per_query(self) -> int:
        return self.multi_stream_samples_per_query or 1

    def expected_queries(self) -> int:
        """Rough number of queries the run issues (for sizing buffers)."""
        dur = self.min_duration_ms / 1000.0
        if self.loadgen_scenario == "Server" and self.server_target_qps:
            return int(self.server_target_qps * dur * 1.2) + (self.min_query_count or 0) + 64
        if self.loadgen_scenario == "Offline" and self.offline_expected_qps:
            return int(self.offline_expected_qps * dur * 1.2) + (self.min_query_count or 0) + 64
        return (self.min_query_count or 0) + 1024

    def results_settings(self) -> dict[str, JsonValue]:
        """What results.json's ``settings`` adds to LoadGen's effective settings: the keys the harness supplied
        for a LoadGen whose bundled mlperf.conf lacks them, and why settings differ from the round's."""
        out: dict[str, JsonValue] = {}
        if self.conf_supplied:
            out["mlperf_conf_supplied"] = {c.line: c.note for c in self.conf_supplied}
        if self.setting_notes:
            out["harness_setting_notes"] = dict(self.setting_notes)
        return out

    def to_test_settings(self, user_conf: str | Path | None = None) -> Any:
        """Build ``mlperf_loadgen.TestSettings``; a user.conf's keys win over the preset, overrides win over both."""
        import mlperf_loadgen as lg

        s = lg.TestSettings()
        s.scenario = getattr(lg.TestScenario, self.loadgen_scenario)
        s.mode = lg.TestMode.AccuracyOnly if self.mode == "accuracy" else lg.TestMode.PerformanceOnly
        from_conf: set[str] = set()
        if user_conf is not None:
            from_conf = apply_user_conf(s, user_conf, self.loadgen_model, self.loadgen_scenario)
        else:
            # Without a conf file TestSettings' seeds are 0; MLPerf's checker wants mlperf.conf's seeds.
            defaults = mlperf_conf_defaults(self.loadgen_model, self.loadgen_scenario)
            for name in SEED_FIELDS:
                setattr(s, name, defaults.seed(name))
        # Where the installed LoadGen's conf lacks a round's key, set it as that conf would have: a user.conf's
        # keys and the harness's own settings below still win.
        apply_supplied(s, self.conf_supplied, self.loadgen_scenario, skip_attrs=from_conf)
        values: dict[str, int | float | bool | None] = {
            "min_duration_ms": self.min_duration_ms,
            "max_duration_ms": self.max_duration_ms,
            "min_query_count": self.min_query_count,
            "server_target_qps": self.server_target_qps,
            "offline_expected_qps": self.offline_expected_qps,
            "single_stream_expected_latency_ns": self.single_stream_expected_latency_ns,
            "multi_stream_expected_latency_ns": self.multi_stream_expected_latency_ns,
            "multi_stream_samples_per_query": self.multi_stream_samples_per_query,
            "use_token_latencies": self.use_token_latencies,
            "ttft_latency": self.ttft_latency_ns,
            "tpot_latency": self.tpot_latency_ns,
            "sample_concatenate_permutation": self.sample_concatenate_permutation,
            "performance_sample_count_override": self.performance_sample_count_override,
            "accuracy_sample_count_override": self.accuracy_sample_count_override,
        }
        for name, value in values.items():
            if value is None or (name in from_conf and name not in self.explicit):
                continue
            setattr(s, name, value)
        # Server latency is judged by TTFT/TPOT with token latencies; keep the query-latency target loose.
        if self.loadgen_scenario == "Server" and self.ttft_latency_ns and "server_target_latency_ns" not in from_conf:
            s.server_target_latency_ns = max(int(s.server_target_latency_ns), self.ttft_latency_ns)
        return s


def plan_settings(
    scenario: str,
    benchmark: str | BenchmarkProfile = "embedded",
    preset: str = "quick",
    mode: str = "performance",
    overrides: SettingsOverrides | None = None,
    sample_count: int | None = None,
) -> SettingsPlan:
    """Validate the combination and produce the plan; raise SettingsError with one line on bad input."""
    try:
        bench = benchmark if isinstance(benchmark, BenchmarkProfile) else get_benchmark(benchmark)
        bench.check_scenario(scenario)
    except BenchmarkError as exc:
        raise SettingsError(str(exc)) from None
    run_preset = _PRESETS.get(preset)
    if run_preset is None:
        raise SettingsError(f"preset: expected 'quick' or 'submission', got '{preset}'")
    run_mode = _MODES.get(mode)
    if run_mode is None:
        raise SettingsError(f"mode: expected 'performance' or 'accuracy', got '{mode}'")
    ov = overrides if overrides is not None else SettingsOverrides()
    try:
        runner: Scenario = get_scenario(scenario)
    except RegistryError as exc:
        raise SettingsError(str(exc)) from None
    cfg = runner.config
    quick = preset == "quick"
    dur_s = ov.duration_s or (cfg.quick_duration_s if quick else SUBMISSION_MIN_DURATION_S)
    min_q = ov.min_query_count or (cfg.quick_min_query_count if quick else cfg.submission_min_query_count)
    limits = bench.limits_for(scenario)
    scen = runner.settings(bench, run_preset, ov)  # the scenario's own fields
    explicit = [
        name
        for name, given in (
            ("server_target_qps", ov.qps and runner.loadgen_scenario == "Server"),
            ("offline_expected_qps", ov.qps and runner.loadgen_scenario == "Offline"),
            ("min_duration_ms", ov.duration_s),
            ("min_query_count", ov.min_query_count),
            ("max_duration_ms", ov.max_duration_s),
        )
        if given
    ]
    # A duration the scenario sets replaces the preset's.
    min_duration_ms = scen.min_duration_ms if scen.min_duration_ms is not None else int(dur_s * 1000)
    model = bench.loadgen_model_for(scenario)
    acc_count, notes = _sample_counts(bench, run_mode, sample_count)
    return SettingsPlan(
        scenario=scenario,
        loadgen_scenario=runner.loadgen_scenario,
        mode=run_mode,
        benchmark=bench.name,
        loadgen_model=model,
        preset=run_preset,
        # Only an unmodified submission preset at MLPerf's durations can produce a submittable result.
        submittable=not quick and not explicit and min_duration_ms >= SUBMISSION_MIN_DURATION_S * 1000,
        min_duration_ms=min_duration_ms,
        max_duration_ms=int(ov.max_duration_s * 1000) if ov.max_duration_s else 0,
        min_query_count=min_q,
        server_target_qps=scen.server_target_qps,
        offline_expected_qps=scen.offline_expected_qps,
        single_stream_expected_latency_ns=scen.single_stream_expected_latency_ns,
        multi_stream_expected_latency_ns=scen.multi_stream_expected_latency_ns,
        multi_stream_samples_per_query=scen.multi_stream_samples_per_query,
        ttft_latency_ns=int(limits[0] * 1e6) if limits else None,
        tpot_latency_ns=int(limits[1] * 1e6) if limits else None,
        performance_sample_count_override=sample_count,
        accuracy_sample_count_override=acc_count,
        # MLPerf requires it for LLMs, but it raises the minimum query count to the performance sample
        # count, which would stretch a quick run; quick runs are not submittable anyway.
        sample_concatenate_permutation=not quick,
        explicit=explicit,
        round=bench.round,
        conf_supplied=conf_supply(bench.round, model, runner.loadgen_scenario) if bench.round else [],
        setting_notes=notes,
    )


def _sample_counts(bench: BenchmarkProfile, mode: Mode, sample_count: int | None) -> tuple[int | None, dict[str, str]]:
    """The accuracy sample count a run asks LoadGen for, and a note for each count below the round's.

    LoadGen logs ``accuracy_sample_count_override`` as the effective count even when the QSL is smaller (it
    caps only the indices it issues), so a smaller set gets its own size: the log then says what was scored.
    """
    notes: dict[str, str] = {}
    where = f"MLPerf {bench.round}'s {bench.name}" if bench.round else bench.name
    if bench.round and sample_count is not None and sample_count < bench.total_sample_count:
        notes["performance_sample_count_override"] = (
            f"{sample_count}: the dataset's size; {where} uses {bench.total_sample_count}"
        )
    want = bench.accuracy_sample_count
    if want is None:
        return None, notes
    count = want if sample_count is None else min(sample_count, want)
    if mode == "accuracy" and count < want:
        notes["accuracy_sample_count_override"] = (
            f"{count}: the dataset's size; {where} scores {want} samples, so this accuracy is not the checker's"
        )
    return count, notes


def quick_reasoning_scale(bench: BenchmarkProfile, preset: str) -> float | None:
    """The reasoning-length scale an embedded sim gets for ``bench`` under ``preset`` (None: not a reasoning
    benchmark). The quick preset shortens reasoning so a laptop run takes minutes; submission keeps it whole."""
    if not bench.reasoning:
        return None
    return QUICK_REASONING_SCALE if preset == "quick" else 1.0


def embedded_dataset(bench: BenchmarkProfile, preset: str, dataset: str | None = None) -> str:
    """The dataset a spawned sim SUT serves and a run over it reads (``dataset`` when one was given).

    A reasoning benchmark's packaged set carries the preset's reasoning scale in its spec
    (``reasoning:deepseek-r1:0.1`` for a quick run): the sim shortens its reasoning by it and the set's FP32
    references are its outputs at that length, so fidelity, accuracy and TEST09 read the same outputs the
    run produced. The scale lives in the spec alone, never beside it in the sim's config.
    """
    if dataset:
        return dataset
    scale = quick_reasoning_scale(bench, preset)
    if scale is not None and scale < 1 and bench.dataset.startswith("reasoning:") and bench.dataset.count(":") == 1:
        return f"{bench.dataset}:{scale:g}"
    return bench.dataset


def embedded_sut_backend(
    bench: BenchmarkProfile, preset: str, backend: Mapping[str, JsonValue] | None = None
) -> tuple[dict[str, JsonValue], list[str]]:
    """The spawned sim SUT's backend config for ``bench`` under ``preset``, and a note for each choice made.

    A reasoning benchmark's sim gets the benchmark's reasoning artifact (``sim-reasoning``) unless the user
    named an artifact or a precision (the sim maps ``precision int8`` on a reasoning set to its int8 artifact).
    Its reasoning length comes from the dataset spec (:func:`embedded_dataset`). The user's own options are
    kept as given; another backend kind is left alone.
    """
    out: dict[str, JsonValue] = dict(backend or {})
    if out.get("kind", "sim") != "sim" or not bench.reasoning:
        return out, []
    notes: list[str] = []
    if "artifact" not in out and "precision" not in out and bench.sim_artifact is not None:
        out["artifact"] = bench.sim_artifact
    scale = quick_reasoning_scale(bench, preset)
    if scale is not None and scale < 1 and "reasoning_scale" not in out:
        notes.append(
            f"the {preset} preset shortens the sim's reasoning to {scale:.0%} of {bench.name}'s length "
            f"(dataset {embedded_dataset(bench, preset)}); output lengths are not the benchmark's"
        )
    return out, notes


def build_test_settings(
    scenario: str,
    benchmark: str | BenchmarkProfile = "embedded",
    preset: str = "quick",
    overrides: SettingsOverrides | None = None,
    mode: str = "performance",
    user_conf: str | Path | None = None,
    sample_count: int | None = None,
) -> Any:
    """``mlperf_loadgen.TestSettings`` for (scenario, benchmark, preset, overrides) in one call."""
    return plan_settings(scenario, benchmark, preset, mode, overrides, sample_count).to_test_settings(user_conf)
