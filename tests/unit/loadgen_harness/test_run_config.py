"""RunConfig validation and the spawned SUT's backend config: one JSON document, checked before spawning."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from loadgen_harness import RunConfig, RunError, SutTarget


def test_backend_config_travels_as_one_json_document() -> None:
    target = SutTarget(
        backend={"kind": "sim", "artifact": "sim-bf16", "chunk_size": 4, "faults": {"wrong_first_token": True}},
        dataset="synthetic:8:1",
    )
    assert json.loads(target.config_json()) == {
        "kind": "sim",
        "artifact": "sim-bf16",
        "chunk_size": 4,
        "faults": {"wrong_first_token": True},
        "dataset": "synthetic:8:1",  # the harness's dataset, unless the config names one
    }
    assert json.loads(SutTarget().config_json()) == {"kind": "sim"}
    assert json.loads(SutTarget(backend={"dataset": "embedded"}, dataset="x").config_json())["dataset"] == "embedded"


@pytest.mark.parametrize(
    ("backend", "needle"),
    [
        ({"bogus": 1}, "backend: field 'bogus'"),
        ({"kind": "nope"}, "unknown backend kind 'nope'"),
        ({"kind": "openai", "base_url": "http://h:1/v1", "artifact": "a"}, "field 'artifact'"),
        ({"chunk_size": 0}, "field 'chunk_size'"),
    ],
)
def test_bad_backend_config_is_refused_before_anything_starts(backend: dict[str, object], needle: str) -> None:
    with pytest.raises(RunError) as exc:
        SutTarget(backend=backend).config_json()
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_address_and_backend_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="only for a spawned SUT"):
        SutTarget(address="127.0.0.1:9", backend={"kind": "sim"})
    with pytest.raises(ValidationError, match="expected host:port"):
        SutTarget(address="nohost")


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


def test_api_key_never_reaches_the_childs_command_line() -> None:
    secret = "sk-test-DO-NOT-LEAK-1234567890"
    with pytest.raises(ValidationError) as exc:
        SutTarget(backend={"kind": "openai", "api_key": secret})
    assert "api_key_env" in str(exc.value)
    assert secret not in str(exc.value)


def _spawned_config(argv: list[str]) -> dict[str, object]:
    """What `lpuperf run ARGV` hands the spawned SUT, as the SUT's `serve --config` reads it back."""
    from cli import build_parser
    from cli._run import backend_from_args
    from sut import add_serve_parser, backends

    args = build_parser().parse_args(["run", *argv])
    document = SutTarget(backend=backend_from_args(args), dataset=args.dataset).config_json()
    import argparse

    from sut._cli import backend_config_from_args

    serve = argparse.ArgumentParser()
    add_serve_parser(serve.add_subparsers())
    cfg = backend_config_from_args(serve.parse_args(["serve", "--port", "0", "--config", document]))
    backends.parse_config(cfg)  # what the child validates before serving
    return cfg


def test_openai_run_flags_become_the_relay_sut_config() -> None:
    """`run --backend openai --base-url URL` used to spawn `serve --preset ''` and die; now one JSON config."""
    cfg = _spawned_config(["--backend", "openai", "--base-url", "http://127.0.0.1:8001/v1"])
    assert cfg["kind"] == "openai" and cfg["base_url"] == "http://127.0.0.1:8001/v1"
    assert cfg["preset"] == ""
    groq = _spawned_config(
        ["--backend", "openai", "--preset", "groq", "--model", "m1", "--api-key-env", "MY_KEY", "--dataset", "x"]
    )
    assert (groq["preset"], groq["model"], groq["api_key_env"], groq["dataset"]) == ("groq", "m1", "MY_KEY", "x")
    assert _spawned_config(["--precision", "int8"]) == {"kind": "sim", "precision": "int8"}
    hf = _spawned_config(["--backend", "transformers", "--artifact", "/m.gguf"])
    assert hf == {"kind": "transformers", "artifact": "/m.gguf"}


def test_openai_relay_backend_is_created_from_the_run_flags() -> None:
    """The relay the spawned SUT would serve, built in-process: nothing remote is contacted."""
    from sut import create_backend

    backend = create_backend(_spawned_config(["--backend", "openai", "--base-url", "http://127.0.0.1:8001/v1"]))
    assert backend.manifest.backend == "openai"
