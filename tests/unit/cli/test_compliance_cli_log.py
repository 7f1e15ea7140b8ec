"""``lpuperf compliance test06 --log``: verify an existing accuracy log; exit 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main
from compliance import encode_tokens

EOS = 9


def _run_dir(tmp: Path, outputs: list[list[int]], counts: list[int] | None = None, scenario: str = "Server") -> Path:
    run = tmp / "run" / scenario / "performance"
    run.mkdir(parents=True)
    log: list[dict[str, object]] = [
        {
            "seq_id": i,
            "qsl_idx": i,
            "data": encode_tokens(o),
            "token_count": len(o) if counts is None else counts[i],
        }
        for i, o in enumerate(outputs)
    ]
    if scenario != "Offline":  # Offline streams nothing: its log holds no first tokens
        for entry, o in zip(log, outputs, strict=True):
            entry["token_data"] = encode_tokens(o[:1])
    (run / "mlperf_log_accuracy.json").write_text(json.dumps(log))
    (run / "artifact.json").write_text(json.dumps({"artifact_id": "a", "eos_token_id": EOS}))
    return run


def test_clean_log_exits_0_and_writes_next_to_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(tmp_path, [[1, 2, EOS], [4, EOS]])
    assert main(["compliance", "test06", "--scenario", "Server", "--log", str(run / "mlperf_log_accuracy.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("First token check pass: True\nEOS check pass: True\nSample length check pass: True\n")
    t06 = tmp_path / "run" / "Server" / "TEST06"
    assert (t06 / "verify_accuracy.txt").read_text().endswith("TEST06 verification complete\n")


def test_planted_fault_exits_1_naming_the_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(tmp_path, [[1, 2, EOS], [4, EOS]], counts=[3, 3])
    out_dir = tmp_path / "t06"
    assert main(["compliance", "test06", "--scenario", "Server", "--log", str(run), "--output", str(out_dir)]) == 1
    assert "Sample length check pass: False" in capsys.readouterr().out
    report = json.loads((out_dir / "test06_report.json").read_text())
    length = next(c for c in report["checks"] if c["name"] == "sample_length")
    assert length["failures"] == [{"qsl_idx": 1, "seq_id": 1, "reason": "data has 2 tokens but token_count is 3"}]


def test_eos_id_option_overrides_the_artifact(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, [[1, 5, 5]])
    log = str(run / "mlperf_log_accuracy.json")
    t06 = ["compliance", "test06", "--scenario", "Server", "--log", log]
    assert main([*t06, "--output", str(tmp_path / "a")]) == 0
    assert main([*t06, "--eos-id", "5", "--output", str(tmp_path / "b")]) == 1


def test_an_offline_log_passes_when_its_scenario_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(tmp_path, [[1, 2, EOS], [4, EOS]], scenario="Offline")
    log = str(run / "mlperf_log_accuracy.json")
    assert main(["compliance", "test06", "--scenario", "Offline", "--log", log]) == 0
    assert capsys.readouterr().out.startswith("First token check pass: Skipped\n")
    # Without --scenario nothing is assumed: one line, exit 2, nothing written.
    assert main(["compliance", "test06", "--log", log, "--output", str(tmp_path / "guess")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scenario: required with --log" in err
    assert not (tmp_path / "guess").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "Server", "--log", "{tmp}/nowhere.json"], "accuracy log not found"),
        (["--log", "{tmp}/run/Server/performance"], "--scenario: required with --log"),
        (["--log", "{tmp}/run/Server/performance", "--sut", "127.0.0.1:1"], "--log: verifies an existing log"),
        (["--eos-id", "3"], "--eos-id/--artifact-json/--output: only with --log"),
        (["--fault", "bogus"], "--fault: unknown fault 'bogus'"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    _run_dir(tmp_path, [[1, EOS]])
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["compliance", "test06", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
