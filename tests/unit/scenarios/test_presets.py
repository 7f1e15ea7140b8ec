"""Scenario presets, benchmark profiles, TestSettings and the once-per-process user.conf guard."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from scenarios import (
    BENCHMARKS,
    SettingsError,
    SettingsOverrides,
    get_benchmark,
    plan_settings,
    scenario_presets,
)
from scenarios._userconf import UserConfError, conf_keys


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline", "Interactive"])
def test_every_scenario_has_a_registered_preset(scenario: str) -> None:
    plan = plan_settings(scenario, "embedded", "quick")
    assert plan.scenario == scenario
    assert plan.use_token_latencies is True
    assert plan.submittable is False
    assert scenario in scenario_presets.names()


def test_interactive_is_server_with_interactive_limits() -> None:
    server = plan_settings("Server", "llama2-70b", "quick", overrides=SettingsOverrides(qps=5))
    inter = plan_settings("Interactive", "llama2-70b", "quick", overrides=SettingsOverrides(qps=5))
    assert inter.loadgen_scenario == "Server"
    assert (server.ttft_latency_ns, server.tpot_latency_ns) == (2000 * 10**6, 200 * 10**6)
    assert (inter.ttft_latency_ns, inter.tpot_latency_ns) == (450 * 10**6, 40 * 10**6)
    assert inter.loadgen_model == "llama2-70b-interactive"


def test_mlperf_constants() -> None:
    assert get_benchmark("llama3_1-8b").limits_for("Server") == (2000, 100)
    assert get_benchmark("llama3_1-8b").limits_for("Interactive") == (500, 30)
    assert get_benchmark("llama3_1-405b").limits_for("Server") == (6000, 175)
    assert get_benchmark("llama3_1-405b").limits_for("Interactive") == (4500, 80)
    assert get_benchmark("mixtral-8x7b").limits_for("Server") == (2000, 200)
    assert get_benchmark("llama2-70b-interactive").limits_for("Server") == (450, 40)
    assert get_benchmark("llama2-70b").total_sample_count == 24576
    assert set(BENCHMARKS) >= {"llama2-70b", "llama2-70b-interactive", "llama3_1-8b", "llama3_1-405b", "mixtral-8x7b"}


def test_submission_uses_mlperf_durations() -> None:
    for scenario in ("Server", "Offline", "SingleStream"):
        plan = plan_settings(scenario, "llama2-70b", "submission")
        assert plan.min_duration_ms == 600_000
        assert plan.sample_concatenate_permutation is True
        assert plan.submittable is True
    ms = plan_settings("MultiStream", "llama2-70b", "submission")
    assert ms.multi_stream_samples_per_query == 8
    assert ms.min_query_count == 662
    # Any override makes a submission run non-submittable.
    assert plan_settings("Server", "llama2-70b", "submission", overrides=SettingsOverrides(qps=3)).submittable is False


def test_quick_server_is_sized_for_early_stopping() -> None:
    plan = plan_settings("Server", "embedded", "quick", overrides=SettingsOverrides(qps=50))
    assert plan.server_target_qps == 50
    assert plan.server_target_qps * plan.min_duration_ms / 1000 >= 500
    # An explicit duration is honoured even when it is short.
    assert (
        plan_settings("Server", "embedded", "quick", overrides=SettingsOverrides(qps=50, duration_s=3)).min_duration_ms
        == 3000
    )


@pytest.mark.parametrize(
    ("scenario", "benchmark", "needle"),
    [
        ("Interactive", "mixtral-8x7b", "defines no interactive"),
        ("Offline", "llama2-70b-interactive", "runs only as Server/Interactive"),
        ("Server", "gpt-9", "benchmark: expected one of"),
        ("Warp", "embedded", "scenario: expected one of"),
    ],
)
def test_invalid_combinations_give_one_line(scenario: str, benchmark: str, needle: str) -> None:
    with pytest.raises(SettingsError) as exc:
        plan_settings(scenario, benchmark, "quick")
    msg = str(exc.value)
    assert needle in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"qps": -1}, "qps"), ({"qps": float("nan")}, "qps"), ({"duration_s": 0}, "duration_s")],
)
def test_invalid_overrides_are_refused_by_their_model(overrides: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        SettingsOverrides(**overrides)
    assert exc.value.errors()[0]["loc"] == (field,)


def test_bad_preset_and_mode() -> None:
    with pytest.raises(SettingsError, match="preset"):
        plan_settings("Server", "embedded", "forever")
    with pytest.raises(SettingsError, match="mode"):
        plan_settings("Server", "embedded", "quick", mode="fast")


def test_test_settings_fields() -> None:
    import mlperf_loadgen as lg

    plan = plan_settings(
        "Server", "embedded", "quick", overrides=SettingsOverrides(qps=7, duration_s=2), sample_count=64
    )
    s = plan.to_test_settings()
    assert s.scenario == lg.TestScenario.Server
    assert s.mode == lg.TestMode.PerformanceOnly
    assert s.server_target_qps == 7
    assert s.min_duration_ms == 2000
    assert s.use_token_latencies is True
    assert s.ttft_latency == 500 * 10**6
    assert s.tpot_latency == 50 * 10**6
    assert s.performance_sample_count_override == 64
    off = plan_settings(
        "Offline", "embedded", "quick", mode="accuracy", overrides=SettingsOverrides(qps=9)
    ).to_test_settings()
    assert off.scenario == lg.TestScenario.Offline
    assert off.mode == lg.TestMode.AccuracyOnly
    assert off.offline_expected_qps == 9
    ms = plan_settings("MultiStream", "embedded", "quick").to_test_settings()
    assert ms.multi_stream_samples_per_query == 8


def test_conf_keys_and_malformed_lines(tmp_path: Path) -> None:
    conf = tmp_path / "user.conf"
    conf.write_text("# comment\n*.Server.target_qps = 3\nlpuperf-embedded.Offline.min_duration = 1000\n")
    assert conf_keys(conf, "lpuperf-embedded", "Server") == {"target_qps"}
    assert conf_keys(conf, "lpuperf-embedded", "Offline") == {"min_duration"}
    bad = tmp_path / "bad.conf"
    bad.write_text("*.Server.target_qps = fast\n")
    with pytest.raises(UserConfError, match=r"bad.conf:1: field 'target_qps': expected a number"):
        conf_keys(bad, "m", "Server")
    bad.write_text("target_qps 3\n")
    with pytest.raises(UserConfError, match=r"expected 'model\.Scenario\.key = value'"):
        conf_keys(bad, "m", "Server")
    with pytest.raises(UserConfError, match="not found"):
        conf_keys(tmp_path / "missing.conf", "m", "Server")


_ONCE_SCRIPT = textwrap.dedent(
    """
    import sys
    from scenarios import SettingsOverrides, UserConfError, plan_settings

    conf, other = sys.argv[1], sys.argv[2]
    plan = plan_settings("Server", "embedded", "quick")
    first = plan.to_test_settings(conf)
    second = plan.to_test_settings(conf)
    forced = plan_settings("Server", "embedded", "quick", overrides=SettingsOverrides(qps=11)).to_test_settings(conf)
    print("qps", first.server_target_qps, second.server_target_qps, forced.server_target_qps)
    print("dur", plan.min_duration_ms, first.min_duration_ms, second.min_duration_ms)
    acc = plan_settings("Server", "embedded", "quick", mode="accuracy").to_test_settings(conf)
    print("mode", int(first.mode), int(acc.mode))
    try:
        plan.to_test_settings(other)
    except UserConfError as exc:
        print("refused", exc)
    """
)


def test_user_conf_loaded_once_per_process(tmp_path: Path) -> None:
    """The guard runs in a fresh process: LoadGen's conf counter is process-wide."""
    conf = tmp_path / "user.conf"
    conf.write_text("lpuperf-embedded.Server.target_qps = 3\n")
    other = tmp_path / "other.conf"
    other.write_text("lpuperf-embedded.Server.target_qps = 4\n")
    out = subprocess.run(
        [sys.executable, "-c", _ONCE_SCRIPT, str(conf), str(other)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    # user.conf beats the preset's QPS on both loads; an explicit override beats user.conf.
    assert lines["qps"].split() == ["3.0", "3.0", "11.0"]
    # Keys the file does not set keep the preset's value (mlperf.conf's 600 s does not leak in).
    preset_ms, first_ms, second_ms = lines["dur"].split()
    assert first_ms == second_ms == preset_ms != "600000"
    # The replayed snapshot carries the conf's decisions, never the first run's mode.
    first_mode, acc_mode = lines["mode"].split()
    assert first_mode != acc_mode
    assert "already loaded" in lines["refused"]
    assert "new process" in lines["refused"]


def test_build_test_settings_in_one_call() -> None:
    import mlperf_loadgen as lg

    from scenarios import build_test_settings

    s = build_test_settings("Interactive", "llama3_1-8b", "quick", SettingsOverrides(qps=4))
    assert s.scenario == lg.TestScenario.Server
    assert (s.ttft_latency, s.tpot_latency) == (500 * 10**6, 30 * 10**6)
    assert s.server_target_qps == 4


def test_seeds_come_from_mlperf_conf_without_a_user_conf() -> None:
    """TestSettings() starts with seeds 0, which MLPerf's checker rejects; the presets apply mlperf.conf's."""
    from scenarios import build_test_settings, mlperf_conf_defaults

    s = build_test_settings("Server", "embedded", "quick")
    official = mlperf_conf_defaults("lpuperf-embedded", "Server")
    for name in ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed"):
        assert getattr(s, name) == official.seed(name) != 0
