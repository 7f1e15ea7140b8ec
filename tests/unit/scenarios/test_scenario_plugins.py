"""A scenario is one registry entry: a new one works everywhere without editing other modules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from pydantic import Field, ValidationError

from common import RegistryError
from scenarios import (
    LoadGenScenario,
    Preset,
    Scenario,
    ScenarioConfig,
    ScenarioSettings,
    SettingsOverrides,
    get_scenario,
    loadgen_scenario,
    plan_settings,
    scenario_names,
    scenario_presets,
)


class BurstConfig(ScenarioConfig):
    kind: str = "Burst"
    burst_qps: float = Field(default=99.0, gt=0)


class BurstScenario(Scenario):
    """A throwaway Server-style scenario that always asks for its own rate."""

    config_model: ClassVar[type[ScenarioConfig]] = BurstConfig
    loadgen_scenario: ClassVar[LoadGenScenario] = "Server"

    def settings(self, bench: object, preset: Preset, ov: SettingsOverrides) -> ScenarioSettings:
        assert isinstance(self.config, BurstConfig)
        return ScenarioSettings(server_target_qps=self.config.burst_qps, min_duration_ms=1234)


@pytest.fixture
def burst() -> Iterator[None]:
    scenario_presets.register("Burst")(BurstScenario)
    try:
        yield
    finally:
        scenario_presets.unregister("Burst")


def test_a_registered_scenario_works_through_the_registry(burst: None) -> None:
    from compliance import Test06Config
    from loadgen_harness import RunConfig

    assert "Burst" in scenario_names()
    assert loadgen_scenario("Burst") == "Server"
    plan = plan_settings("Burst", "embedded", "quick")
    assert (plan.scenario, plan.loadgen_scenario) == ("Burst", "Server")
    assert plan.server_target_qps == 99.0 and plan.min_duration_ms == 1234
    # Server limits (not interactive), and the configs that name a scenario accept it.
    assert plan.ttft_latency_ns == 500 * 10**6
    assert RunConfig(scenario="Burst").scenario == "Burst"
    assert Test06Config(scenario="Burst").scenario == "Burst"
    cfg = get_scenario("Burst", burst_qps=5).config
    assert isinstance(cfg, BurstConfig) and cfg.burst_qps == 5


def test_unknown_scenario_is_refused_by_every_config() -> None:
    from loadgen_harness import RunConfig

    with pytest.raises(ValidationError) as exc:
        RunConfig(scenario="Burst")
    assert "expected one of" in str(exc.value) and "Server" in str(exc.value)


def test_duplicate_registration_raises() -> None:
    with pytest.raises(RegistryError, match="'Server' is already registered"):
        scenario_presets.register("Server")(BurstScenario)
    assert loadgen_scenario("Server") == "Server"


def test_interactive_runs_as_server_in_one_place() -> None:
    assert {n: loadgen_scenario(n) for n in scenario_names()} == {
        "Interactive": "Server",
        "MultiStream": "MultiStream",
        "Offline": "Offline",
        "Server": "Server",
        "SingleStream": "SingleStream",
    }


def test_scenario_config_is_strict() -> None:
    with pytest.raises(RegistryError, match="field 'bogus'"):
        get_scenario("Server", bogus=1)
