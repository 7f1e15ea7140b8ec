"""MLPerf v6.1 benchmark profiles, read from the round's table, and the harness supplying conf keys a LoadGen lacks."""

from __future__ import annotations

import pytest

from scenarios import SettingsOverrides, get_benchmark, plan_settings
from scenarios._conf_supply import (
    extract_conf,
    lookup,
    parse_conf,
    supplied_keys,
    wheel_conf_text,
)
from scenarios._mlperf import MLPERF_ROUND_SEEDS, compliance_tests, project_benchmark, requires_test06
from scenarios._presets import embedded_dataset, embedded_sut_backend
from scenarios._rounds import CURRENT_ROUND, get_round

NEW = ("deepseek-r1", "deepseek-r1-interactive", "gpt-oss-120b", "gpt-oss-120b-interactive")


@pytest.mark.parametrize(
    ("name", "server", "interactive"),
    [
        ("deepseek-r1", (2000, 80), (1500, 15)),
        ("gpt-oss-120b", (3000, 80), (2000, 15)),
        ("llama3_1-8b", (2000, 100), (500, 30)),
    ],
)
def test_token_limits_are_v61s(name: str, server: tuple[int, int], interactive: tuple[int, int]) -> None:
    bench = get_benchmark(name)
    assert bench.round == "v6.1"
    assert bench.limits_for("Server") == server
    assert bench.limits_for("Interactive") == interactive
    inter = get_benchmark(f"{name}-interactive")
    assert inter.loadgen_model == f"{name}-interactive"
    assert inter.limits_for("Server") == interactive
    assert inter.limits_for("Interactive") == interactive
    # The checker's own LLM_LATENCY_LIMITS say the same.
    rules = bench.rules
    assert rules is not None
    assert rules.latency_limits_ms == {"Server": server, "Interactive": interactive}


def test_sample_counts_targets_and_tests() -> None:
    r1, oss, edge = get_benchmark("deepseek-r1"), get_benchmark("gpt-oss-120b"), get_benchmark("llama3_1-8b-edge")
    assert (r1.total_sample_count, r1.accuracy_sample_count) == (4388, None)
    assert (oss.total_sample_count, oss.accuracy_sample_count) == (6396, 4395)
    assert edge.total_sample_count == 5000
    assert r1.conf_value("Offline", "min_query_count") == "4388"
    assert oss.conf_value("Offline", "min_query_count") is None  # LoadGen's default (100) applies
    assert r1.conf_value("Server", "min_duration") == "600000"
    assert r1.rules is not None and oss.rules is not None
    assert r1.rules.accuracy_targets == pytest.approx({"exact_match": 80.544618, "TOKENS_PER_SAMPLE": 3497.60466})
    assert r1.rules.accuracy_upper_limits == pytest.approx({"TOKENS_PER_SAMPLE": 4274.85014})
    assert oss.rules.accuracy_targets == pytest.approx({"exact_match": 82.2987})
    assert (r1.scorer, oss.scorer, edge.scorer) == ("exact_match-deepseek-r1", "exact_match-gpt-oss-120b", "rouge")
    assert (r1.dataset, oss.dataset) == ("reasoning:deepseek-r1", "reasoning:gpt-oss-120b")
    assert (r1.reasoning_style, oss.reasoning_style, edge.reasoning_style) == ("think", "harmony", None)
    assert r1.compliance_tests == ("TEST06",)
    assert oss.compliance_tests == get_benchmark("gpt-oss-120b-interactive").compliance_tests == ("TEST07", "TEST09")
    assert edge.compliance_tests == ()
    assert oss.test07 is not None and oss.test07.accuracy_threshold == 60.698
    assert oss.test09 is not None and (oss.test09.min_output_tokens, oss.test09.max_output_tokens) == (1150.38, 1406.02)
    assert (oss.max_new_tokens_for("performance"), oss.max_new_tokens_for("accuracy")) == (10240, 32768)
    assert r1.max_new_tokens_for("accuracy") == 20000


def test_required_scenarios_per_system_type() -> None:
    for name in ("deepseek-r1", "gpt-oss-120b", "llama3_1-8b"):
        dc = get_benchmark(name).required_scenarios("datacenter")
        assert dc is not None
        assert dc.missing({"Offline", "Interactive"}) == []
        assert dc.missing({"Offline", "Server"}) == []
        assert dc.missing({"Offline"}) == ["(one of) Server or Interactive"]
        assert get_benchmark(name).required_scenarios("edge") is None
    edge = get_benchmark("llama3_1-8b-edge").required_scenarios("edge")
    assert edge is not None and edge.missing({"Offline"}) == ["SingleStream"]


def test_edge_runs_only_singlestream_and_offline() -> None:
    from scenarios import SettingsError

    for scenario in ("SingleStream", "Offline"):
        assert plan_settings(scenario, "llama3_1-8b-edge", "quick").loadgen_model == "llama3_1-8b-edge"
    for scenario in ("Server", "Interactive", "MultiStream"):
        with pytest.raises(SettingsError, match="runs only as SingleStream, Offline"):
            plan_settings(scenario, "llama3_1-8b-edge", "quick")


def test_interactive_scenario_runs_as_server_under_the_interactive_model() -> None:
    plan = plan_settings("Interactive", "deepseek-r1", "quick", overrides=SettingsOverrides(qps=3))
    assert plan.loadgen_scenario == "Server"
    assert plan.loadgen_model == "deepseek-r1-interactive"
    assert (plan.ttft_latency_ns, plan.tpot_latency_ns) == (1500 * 10**6, 15 * 10**6)


def test_round_seeds_and_checker_names() -> None:
    rnd = get_round(CURRENT_ROUND)
    assert rnd is not None and MLPERF_ROUND_SEEDS["v6.1"] == rnd.seeds
    assert get_benchmark("deepseek-r1").seeds == rnd.seeds
    assert rnd.seeds.qsl_rng_seed == 2085463073848966840
    assert project_benchmark("llama3.1-8b-edge") == "llama3_1-8b-edge"
    assert compliance_tests("gpt-oss-120b") == ("TEST07", "TEST09")
    assert not requires_test06("gpt-oss-120b")
    assert not requires_test06("llama3.1-8b-edge")
    assert requires_test06("deepseek-r1") and requires_test06("llama2-70b-99.9")


def test_the_installed_wheel_has_every_v61_key() -> None:
    """mlcommons-loadgen 6.0.17 was built with v6.1's conf: nothing to supply (facts 1b)."""
    text = wheel_conf_text()
    assert text is not None
    wheel = parse_conf(text)
    rnd = get_round("v6.1")
    assert rnd is not None
    for name in (*NEW, "llama3_1-8b-interactive", "llama3_1-8b-edge"):
        model = get_benchmark(name).loadgen_model
        for scenario in ("Server", "Offline", "SingleStream"):
            assert supplied_keys("v6.1", rnd.conf, wheel, model, scenario) == [], (model, scenario)
    assert plan_settings("Server", "gpt-oss-120b", "submission").conf_supplied == []


def _wheel_without(*keys: str, **replace: str) -> dict[str, str]:
    text = wheel_conf_text()
    assert text is not None
    wheel = parse_conf(text)
    for key in keys:
        del wheel[key]
    wheel.update(replace)
    return wheel


def test_a_missing_key_is_supplied_and_a_different_seed_replaced() -> None:
    rnd = get_round("v6.1")
    assert rnd is not None
    old_seed = "2465351861681999779"  # v6.0's, as a 6.0.16 wheel carries it
    wheel = _wheel_without(
        "deepseek-r1.Server.ttft_latency",
        "deepseek-r1.*.performance_sample_count_override",
        **{"*.*.qsl_rng_seed": old_seed},
    )
    got = {s.key: s for s in supplied_keys("v6.1", rnd.conf, wheel, "deepseek-r1", "Server", "mlcommons-loadgen 6.0.9")}
    assert set(got) == {"ttft_latency", "performance_sample_count_override", "qsl_rng_seed"}
    assert got["ttft_latency"].value == "2000" and got["ttft_latency"].wheel_value is None
    assert got["ttft_latency"].note == (
        "deepseek-r1.Server.ttft_latency = 2000: not in the installed LoadGen's mlperf.conf "
        "(mlcommons-loadgen 6.0.9); supplied from MLPerf v6.1"
    )
    assert got["qsl_rng_seed"].wheel_value == old_seed
    assert "has 2465351861681999779 (*.*.qsl_rng_seed); supplied MLPerf v6.1's value" in got["qsl_rng_seed"].note
    # Offline does not read the Server-only keys: only what that run would take from the conf.
    offline = {s.key for s in supplied_keys("v6.1", rnd.conf, wheel, "deepseek-r1", "Offline")}
    assert offline == {"performance_sample_count_override", "qsl_rng_seed"}


def test_an_unreadable_wheel_conf_supplies_every_key() -> None:
    rnd = get_round("v6.1")
    assert rnd is not None
    keys = {s.key for s in supplied_keys("v6.1", rnd.conf, None, "gpt-oss-120b", "Server")}
    assert {"ttft_latency", "tpot_latency", "accuracy_sample_count_override", "qsl_rng_seed"} <= keys


def test_extract_conf_finds_the_embedded_text() -> None:
    body = "".join(f"m{i}.*.min_query_count = {i}\n" for i in range(30)) + "# comment line\n"
    blob = b"\x00\x01garbage\x00" + body.encode() + b"\x00" + b"x" * 600 + b"\x00"
    assert extract_conf(blob) == body
    assert extract_conf(b"\x00" * 100) is None
    conf = parse_conf(body + "*.Server.min_duration = 5\n")
    assert lookup(conf, "m3", "Offline", "min_query_count") == ("m3.*.min_query_count", "3")
    assert lookup(conf, "m3", "Server", "min_duration") == ("*.Server.min_duration", "5")
    assert lookup(conf, "m3", "Offline", "min_duration") is None


def test_supplied_keys_reach_test_settings_and_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulated older wheel: no deepseek-r1 limits and v6.0's seeds. The TestSettings get v6.1's, and say so."""
    from scenarios import _conf_supply, _presets

    text = wheel_conf_text()
    assert text is not None
    old_seed = "2465351861681999779"
    lines = [
        ln for ln in text.splitlines() if not ln.startswith(("deepseek-r1.Server.ttft", "deepseek-r1.Server.tpot"))
    ]
    lines = [ln.replace("2085463073848966840", old_seed) for ln in lines]
    monkeypatch.setattr(_conf_supply, "wheel_conf_text", lambda: "\n".join(lines))
    # What that wheel's FromConfig would hand the harness for the seeds.
    real = _presets.mlperf_conf_defaults("deepseek-r1", "Server")
    monkeypatch.setattr(
        _presets, "mlperf_conf_defaults", lambda *_: real.model_copy(update={"qsl_rng_seed": int(old_seed)})
    )
    plan = plan_settings("Server", "deepseek-r1", "submission")
    keys = {c.line for c in plan.conf_supplied}
    assert keys == {"deepseek-r1.Server.ttft_latency", "deepseek-r1.Server.tpot_latency", "*.*.qsl_rng_seed"}
    settings = plan.to_test_settings()
    assert settings.qsl_rng_seed == 2085463073848966840  # v6.1's, not the simulated wheel's
    assert (settings.ttft_latency, settings.tpot_latency) == (2000 * 10**6, 80 * 10**6)
    notes = plan.results_settings()["mlperf_conf_supplied"]
    assert isinstance(notes, dict) and set(notes) == keys
    assert "not in the installed LoadGen's mlperf.conf" in str(notes["deepseek-r1.Server.ttft_latency"])
    assert f"has {old_seed}" in str(notes["*.*.qsl_rng_seed"])


def test_apply_supplied_sets_fields_as_fromconfig_would() -> None:
    import mlperf_loadgen as lg

    from scenarios._conf_supply import ConfSupply, apply_supplied

    def supply(key: str, value: str) -> ConfSupply:
        return ConfSupply(line=f"x.Server.{key}", key=key, value=value, round="v6.1")

    s = lg.TestSettings()
    items = [
        supply("ttft_latency", "1500"),
        supply("target_latency_percentile", "99"),
        supply("sample_concatenate_permutation", "1"),
        supply("accuracy_sample_count_override", "4395"),
        supply("qsl_rng_seed", "2085463073848966840"),
        supply("min_query_count", "77"),
    ]
    apply_supplied(s, items, "Server", skip_attrs={"min_query_count", "qsl_rng_seed"})
    assert s.ttft_latency == 1500 * 10**6
    assert s.server_target_latency_percentile == pytest.approx(0.99)
    assert s.sample_concatenate_permutation is True
    assert s.accuracy_sample_count_override == 4395
    assert s.qsl_rng_seed == 2085463073848966840  # seeds come from mlperf.conf only: a user.conf cannot hold them
    assert s.min_query_count != 77  # the user.conf's value stands


def test_accuracy_sample_count_follows_a_smaller_dataset_and_says_so() -> None:
    plan = plan_settings("Offline", "gpt-oss-120b", "quick", mode="accuracy", sample_count=40)
    assert plan.accuracy_sample_count_override == 40
    assert plan.performance_sample_count_override == 40
    notes = plan.setting_notes
    assert notes["accuracy_sample_count_override"].startswith("40: the dataset's size; MLPerf v6.1's gpt-oss-120b")
    assert "4395" in notes["accuracy_sample_count_override"]
    assert "6396" in notes["performance_sample_count_override"]
    full = plan_settings("Offline", "gpt-oss-120b", "submission", mode="accuracy", sample_count=6396)
    assert full.accuracy_sample_count_override == 4395 and full.setting_notes == {}
    assert full.to_test_settings().accuracy_sample_count_override == 4395
    assert plan_settings("Offline", "deepseek-r1", "quick", sample_count=40).accuracy_sample_count_override is None


def test_embedded_sut_backend_for_reasoning_benchmarks() -> None:
    r1 = get_benchmark("deepseek-r1")
    backend, notes = embedded_sut_backend(r1, "quick")
    # The reasoning scale travels in the dataset spec only: the sim and the run's references read the same one.
    assert backend == {"artifact": "sim-reasoning"}
    assert notes and "shortens the sim's reasoning to 10%" in notes[0] and "reasoning:deepseek-r1:0.1" in notes[0]
    assert embedded_dataset(r1, "quick") == "reasoning:deepseek-r1:0.1"
    assert embedded_dataset(r1, "submission") == "reasoning:deepseek-r1"
    assert embedded_dataset(r1, "quick", "reasoning:deepseek-r1") == "reasoning:deepseek-r1"  # a given spec stands
    assert embedded_sut_backend(r1, "submission") == ({"artifact": "sim-reasoning"}, [])
    # The user's choices stand: precision int8 is the reasoning sim's int8 artifact, a manifest is kept.
    assert embedded_sut_backend(r1, "quick", {"precision": "int8"})[0] == {"precision": "int8"}
    assert embedded_sut_backend(r1, "quick", {"artifact": "my.json"})[0] == {"artifact": "my.json"}
    assert embedded_sut_backend(r1, "quick", {"kind": "openai"}) == ({"kind": "openai"}, [])
    assert embedded_dataset(get_benchmark("embedded"), "quick") == "embedded"
    assert embedded_sut_backend(get_benchmark("llama3_1-8b"), "quick") == ({}, [])
