"""RunConfig validation and the mapping of a backend config to `lpuperf serve` flags."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loadgen_harness import RunConfig
from loadgen_harness._run import serve_args_from_backend


def test_backend_config_becomes_serve_flags() -> None:
    args = serve_args_from_backend(
        {"kind": "sim", "artifact": "sim-bf16", "chunk_size": 4, "faults": {"wrong_first_token": True, "x": False}},
        "synthetic:8:1",
    )
    assert args == [
        "--backend", "sim", "--artifact", "sim-bf16", "--chunk-size", "4",
        "--fault", "wrong_first_token", "--dataset", "synthetic:8:1",
    ]  # fmt: skip
    assert serve_args_from_backend({"fault": ["mid_sequence_eos", "batch_first_token"]}, None) == [
        "--fault", "mid_sequence_eos", "--fault", "batch_first_token",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [("qps", 0), ("qps", float("inf")), ("duration_s", -1), ("sut", "localhost"), ("sut", "h:99999"), ("mode", "x")],
)
def test_run_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as exc:
        RunConfig(**{field: value})
    assert exc.value.errors()[0]["loc"] == (field,)


def test_log_dir_layout() -> None:
    cfg = RunConfig(scenario="Offline", mode="accuracy", out_dir="OUT")
    assert str(cfg.log_dir("r7")) == "OUT/r7/Offline/accuracy"


def test_api_key_never_becomes_a_serve_flag() -> None:
    from loadgen_harness import RunError

    secret = "sk-test-DO-NOT-LEAK-1234567890"
    with pytest.raises(RunError) as exc:
        serve_args_from_backend({"kind": "openai", "api_key": secret}, None)
    assert "api_key_env" in str(exc.value)
    assert secret not in str(exc.value)


def test_openai_run_flags_become_a_relay_backend_config() -> None:
    from cli import build_parser

    args = build_parser().parse_args(
        ["run", "--backend", "openai", "--preset", "groq", "--model", "m1", "--api-key-env", "MY_KEY"]
    )
    from sut._openai import openai_config_from_args

    cfg = openai_config_from_args(args)
    assert cfg["kind"] == "openai" and cfg["preset"] == "groq"
    assert cfg["model"] == "m1" and cfg["api_key_env"] == "MY_KEY"
    flags = serve_args_from_backend(cfg, None)
    assert flags[:2] == ["--backend", "openai"] and "--api-key-env" in flags
