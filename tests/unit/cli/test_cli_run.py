"""``lpuperf run`` input errors: one line naming the field, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import main


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--qps", "-5"], "field 'qps'"),
        (["--qps", "1e9", "--duration", "1"], "qps/duration: qps 1e+09 x duration 1 s plans about 1e+09 queries"),
        (["--duration", "1e12"], "qps 12 x duration 1e+12 s"),
        (["--duration", "0"], "field 'duration'"),
        (["--scenario", "Offline", "--benchmark", "llama2-70b-interactive"], "runs only as Server/Interactive"),
        (["--scenario", "Interactive", "--benchmark", "mixtral-8x7b"], "no interactive TTFT/TPOT limits"),
        (["--benchmark", "nope"], "benchmark: expected one of"),
        (["--sut", "nohost"], "expected host:port"),
        (["--sut", "127.0.0.1:9", "--artifact", "sim-int8"], "--backend/--precision/--artifact"),
        (["--user-conf", "/nonexistent/user.conf"], "user_conf"),
        (["--dataset", "/nonexistent/data.jsonl"], "dataset file not found"),
        (["--dataset", "synthetic:x"], "synthetic[:N[:SEED]]"),
        (["--artifact", "/nonexistent/manifest.json"], "embedded SUT: "),
        (["--preset", "groq"], "--preset groq: expected quick or submission"),
        (["--backend", "nope"], "unknown backend kind 'nope'"),
        (["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--precision", "x"], "field 'precision'"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["run", "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("lpuperf run: error: ")
    assert needle in err
    assert "\n" not in err
    assert not (tmp_path / "out").exists()


def test_valid_arguments_parse_and_reach_the_sut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Good arguments get past validation: the failure is the (closed) SUT port, still one line."""
    rc = main(["run", "--sut", "127.0.0.1:9", "--qps", "5", "--duration", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "GetArtifact failed" in err
    assert not (tmp_path / "o").exists()


def test_busy_metrics_port_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc = main(["run", "--metrics-port", str(port), "--sut", "127.0.0.1:9", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert f"metrics_port: cannot listen on 127.0.0.1:{port}" in err
    assert "\n" not in err
