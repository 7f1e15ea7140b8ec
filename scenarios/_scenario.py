"""Scenarios as plugins: one registry entry per scenario, each with its own pydantic config.

A scenario plugin states which LoadGen scenario it runs as (``loadgen_scenario``; Interactive is a
preset that LoadGen runs as Server), whether it is judged by the benchmark's interactive limits,
and returns its scenario-specific TestSettings fields as a typed :class:`ScenarioSettings`.

:data:`ScenarioName` is the one type every config uses for a scenario name: a string the registry
knows, so a scenario registered anywhere (a new module, a test) is accepted everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from common import PluginConfig
from scenarios._plugins import scenario_presets

if TYPE_CHECKING:
    from scenarios._benchmarks import BenchmarkProfile

LoadGenScenario = Literal["SingleStream", "MultiStream", "Server", "Offline"]
Preset = Literal["quick", "submission"]

MULTI_STREAM_SAMPLES_PER_QUERY = 8
MULTI_STREAM_SUBMISSION_QUERIES = 662
QUICK_SERVER_TARGET_QUERIES = 600  # early stopping wants ~500 for a p99 verdict; leave a margin
QUICK_MAX_DURATION_S = 120.0
# LoadGen generates SingleStream/MultiStream queries for min_duration / expected latency and stops
# issuing once duration and count are met. A run against a SUT faster than expected runs out of
# queries ("Ending early") and is INVALID, so quick runs under-estimate: the duration decides.
QUICK_EXPECTED_LATENCY_MS = 1.0


class SettingsOverrides(BaseModel):
    """What a user may override on top of a preset. None = the preset's value."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    qps: float | None = Field(default=None, gt=0, description="Server target QPS / Offline expected QPS")
    duration_s: float | None = Field(default=None, gt=0, description="LoadGen min_duration")
    min_query_count: int | None = Field(default=None, gt=0)
    max_duration_s: float | None = Field(default=None, gt=0)
    expected_latency_ms: float | None = Field(default=None, gt=0)


class ScenarioSettings(BaseModel):
    """The scenario-specific TestSettings fields a plugin sets (None: not this scenario's)."""

    model_config = ConfigDict(extra="forbid")

    server_target_qps: float | None = None
    offline_expected_qps: float | None = None
    single_stream_expected_latency_ns: int | None = None
    multi_stream_expected_latency_ns: int | None = None
    multi_stream_samples_per_query: int | None = None
    min_duration_ms: int | None = Field(default=None, description="replaces the preset's duration when set")


class ScenarioConfig(PluginConfig):
    """Base preset; ``kind`` is the scenario name."""

    model_config = ConfigDict(extra="forbid")

    quick_duration_s: float = Field(default=10.0, gt=0)
    quick_min_query_count: int = Field(default=1, gt=0)
    submission_min_query_count: int | None = Field(default=None, gt=0, description="None = LoadGen's default")


class Scenario:
    """Base plugin. Subclasses set ``config_model`` and ``loadgen_scenario`` and override ``settings``."""

    config_model: ClassVar[type[ScenarioConfig]] = ScenarioConfig
    loadgen_scenario: ClassVar[LoadGenScenario] = "Server"
    # Judged by the benchmark's interactive TTFT/TPOT limits, under MLPerf's "<model>-interactive" key.
    interactive: ClassVar[bool] = False

    def __init__(self, config: ScenarioConfig) -> None:
        self.config = config

    def settings(self, bench: BenchmarkProfile, preset: Preset, ov: SettingsOverrides) -> ScenarioSettings:
        return ScenarioSettings()


def _registered(name: str) -> str:
    if name not in scenario_presets.names():
        raise ValueError(f"expected one of {', '.join(scenario_presets.names())}, got '{name}'")
    return name


ScenarioName = Annotated[str, AfterValidator(_registered)]


# --- the built-in scenarios (registered by name in scenarios._plugins) --------------------------


class ServerConfig(ScenarioConfig):
    kind: str = "Server"


class InteractiveConfig(ServerConfig):
    kind: str = "Interactive"


class OfflineConfig(ScenarioConfig):
    kind: str = "Offline"
    quick_duration_s: float = Field(default=5.0, gt=0)


class SingleStreamConfig(ScenarioConfig):
    kind: str = "SingleStream"
    quick_min_query_count: int = Field(default=64, gt=0)  # early stopping's floor for a p90 verdict


class MultiStreamConfig(ScenarioConfig):
    kind: str = "MultiStream"
    samples_per_query: int = Field(default=MULTI_STREAM_SAMPLES_PER_QUERY, gt=0)
    # Early stopping judges MultiStream only after 662 queries, quick or not.
    quick_min_query_count: int = Field(default=MULTI_STREAM_SUBMISSION_QUERIES, gt=0)
    submission_min_query_count: int | None = Field(default=MULTI_STREAM_SUBMISSION_QUERIES, gt=0)


def _expected_latency_ns(ov: SettingsOverrides, preset: Preset, default_ms: float) -> int:
    lat = ov.expected_latency_ms or (QUICK_EXPECTED_LATENCY_MS if preset == "quick" else default_ms)
    return int(lat * 1e6)


class ServerScenario(Scenario):
    config_model: ClassVar[type[ScenarioConfig]] = ServerConfig
    loadgen_scenario: ClassVar[LoadGenScenario] = "Server"

    def settings(self, bench: BenchmarkProfile, preset: Preset, ov: SettingsOverrides) -> ScenarioSettings:
        qps = ov.qps or bench.default_server_qps
        out = ScenarioSettings(server_target_qps=qps)
        if preset == "quick" and ov.duration_s is None:
            # Enough queries for early stopping, but a quick run stays quick.
            dur = min(QUICK_MAX_DURATION_S, max(self.config.quick_duration_s, QUICK_SERVER_TARGET_QUERIES / qps))
            out.min_duration_ms = int(dur * 1000)
        return out


class InteractiveScenario(ServerScenario):
    config_model: ClassVar[type[ScenarioConfig]] = InteractiveConfig
    interactive: ClassVar[bool] = True


class OfflineScenario(Scenario):
    config_model: ClassVar[type[ScenarioConfig]] = OfflineConfig
    loadgen_scenario: ClassVar[LoadGenScenario] = "Offline"

    def settings(self, bench: BenchmarkProfile, preset: Preset, ov: SettingsOverrides) -> ScenarioSettings:
        return ScenarioSettings(offline_expected_qps=ov.qps or bench.default_offline_qps)


class SingleStreamScenario(Scenario):
    config_model: ClassVar[type[ScenarioConfig]] = SingleStreamConfig
    loadgen_scenario: ClassVar[LoadGenScenario] = "SingleStream"

    def settings(self, bench: BenchmarkProfile, preset: Preset, ov: SettingsOverrides) -> ScenarioSettings:
        lat_ns = _expected_latency_ns(ov, preset, bench.default_single_stream_latency_ms)
        return ScenarioSettings(single_stream_expected_latency_ns=lat_ns)


class MultiStreamScenario(Scenario):
    config_model: ClassVar[type[ScenarioConfig]] = MultiStreamConfig
    loadgen_scenario: ClassVar[LoadGenScenario] = "MultiStream"

    def settings(self, bench: BenchmarkProfile, preset: Preset, ov: SettingsOverrides) -> ScenarioSettings:
        assert isinstance(self.config, MultiStreamConfig)
        return ScenarioSettings(
            multi_stream_samples_per_query=self.config.samples_per_query,
            multi_stream_expected_latency_ns=_expected_latency_ns(ov, preset, bench.default_multi_stream_latency_ms),
        )
