"""What a measuring session prints about its steps: each verdict once, with its detail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import compliance
from compliance import encode_tokens, verify_log
from workflows import RunStep, SessionConfig
from workflows._session import Session

EOS = 9


def _outcome(tmp: Path, outputs: list[list[int]]) -> compliance.Test06Outcome:
    run = tmp / "pass"
    run.mkdir()
    log = [
        {"seq_id": i, "qsl_idx": i, "data": encode_tokens(o), "token_data": encode_tokens(o[:1]), "token_count": len(o)}
        for i, o in enumerate(outputs)
    ]
    (run / "mlperf_log_accuracy.json").write_text(json.dumps(log))
    return verify_log(run / "mlperf_log_accuracy.json", "Server", tmp / "TEST06", EOS)


@pytest.mark.parametrize(("outputs", "verdict"), [([[1, 2, EOS], [4, EOS]], "PASS"), ([[1, EOS, EOS]], "FAIL")])
def test_test06_verdict_is_printed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outputs: list[list[int]], verdict: str
) -> None:
    outcome = _outcome(tmp_path, outputs)

    def fake_run_test06(cfg: compliance.Test06Config) -> compliance.Test06Outcome:
        assert cfg.sut == "127.0.0.1:1"
        return outcome

    monkeypatch.setattr(compliance, "run_test06", fake_run_test06)
    lines: list[str] = []
    step = RunStep(name="TEST06", scenario="Server")
    session = Session(SessionConfig(run_id="r", out_dir=tmp_path, test06=step), "127.0.0.1:1", lines.append)
    session.run()
    (line,) = [ln for ln in lines if ln.startswith("TEST06 ")]
    assert line.startswith(f"TEST06 {verdict}: ")
    assert "TEST06 PASS" not in line[5:] and "TEST06 FAIL" not in line[5:], line  # not "TEST06 PASS: TEST06 PASS"
    assert "strict " in line  # the strict checks' detail is still there
