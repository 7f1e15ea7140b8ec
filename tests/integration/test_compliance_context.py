"""The context probe against real gRPC servers on 127.0.0.1: each way of mishandling the limit fails.

The sim covers the clean SUT and the capped one (tests/integration/test_compliance_faults.py and the
CLI test below). A small scripted servicer here plants the failure modes the sim does not have: a
refusal with the wrong status, an over-limit request that is accepted, a stream that stops early.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from compliance import ComplianceInputError, ContextProbeConfig, probe_context
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

EOS = 3
LIMIT = 1000


class ScriptedSut(pb_grpc.InferenceServicer):
    """Advertises LIMIT; ``mode`` decides how it treats a request over ``cap`` tokens."""

    def __init__(self, mode: str, cap: int = LIMIT) -> None:
        self.mode, self.cap = mode, cap

    def GetArtifact(self, request: Any, context: Any) -> Any:
        artifact_id = f"scripted-{self.mode}"
        manifest: dict[str, object] = {"artifact_id": artifact_id, "max_context_tokens": LIMIT, "eos_token_id": EOS}
        if self.mode == "bad_manifest":
            manifest["max_context_tokens"] = "lots"
        return pb.ArtifactManifest(
            artifact_id=artifact_id,
            max_context_tokens=LIMIT,
            eos_token_id=EOS,
            manifest_json=json.dumps(manifest),
        )

    def Generate(self, request: Any, context: Any) -> Iterator[Any]:
        total = len(request.input_ids) + request.max_new_tokens
        if total > self.cap:
            if self.mode == "wrong_status":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "prompt too long")
            elif self.mode != "accept_over":
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{total} tokens exceeds {self.cap}")
        n = request.max_new_tokens
        if self.mode == "short_stream" and total > LIMIT // 2:
            yield pb.GenerateChunk(token_ids=[5])
            yield pb.GenerateChunk(token_ids=[6], finish_reason=pb.FINISH_REASON_CANCELLED)
            return
        yield pb.GenerateChunk(token_ids=[5])
        yield pb.GenerateChunk(token_ids=[6] * (n - 2) + [EOS], finish_reason=pb.FINISH_REASON_EOS, n_tokens=n)


def _serve(sut: ScriptedSut) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_InferenceServicer_to_server(sut, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def _probe(mode: str, cap: int = LIMIT) -> Any:
    server, address = _serve(ScriptedSut(mode, cap))
    try:
        return probe_context(address, ContextProbeConfig(max_new_tokens=8, timeout_s=10))
    finally:
        server.stop(grace=None)


def test_correct_sut_passes() -> None:
    verdict = _probe("correct")
    assert verdict.passed and verdict.first_failure_tokens is None
    assert [a.total_tokens for a in verdict.attempts] == [500, 900, 990, 1000, 1001]
    assert all(a.status == "OK" and a.n_tokens == 8 for a in verdict.attempts[:4])
    assert verdict.attempts[-1].status == "RESOURCE_EXHAUSTED"


def test_refusal_with_a_generic_status_fails() -> None:
    verdict = _probe("wrong_status")
    assert not verdict.passed and verdict.first_failure_tokens == 1001
    assert verdict.message == "advertised 1000, failed at 1001: status INVALID_ARGUMENT 'prompt too long'"


def test_accepting_over_the_limit_fails() -> None:
    verdict = _probe("accept_over")
    assert not verdict.passed and verdict.first_failure_tokens == 1001
    assert "expected RESOURCE_EXHAUSTED" in verdict.message


def test_cap_below_advertised_fails_at_first_length_over_the_cap() -> None:
    verdict = _probe("correct", cap=950)  # a clean RESOURCE_EXHAUSTED, but inside the advertised limit
    assert not verdict.passed and verdict.first_failure_tokens == 990
    assert verdict.message == "advertised 1000, failed at 990: status RESOURCE_EXHAUSTED '990 tokens exceeds 950'"


def test_incomplete_output_within_the_limit_fails() -> None:
    verdict = _probe("short_stream")
    assert not verdict.passed and verdict.first_failure_tokens == 900
    assert "incomplete output" in verdict.attempts[1].reason and verdict.attempts[0].passed


def test_a_manifest_stating_no_number_is_one_error_line() -> None:
    with pytest.raises(ComplianceInputError) as info:
        _probe("bad_manifest")
    msg = str(info.value)
    assert "\n" not in msg and "artifact manifest: field 'max_context_tokens'" in msg, msg


def _lpuperf(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with its output root in ``tmp_path`` and run from there: its default ``--out results`` (and
    with it the run store ``results/lpuperf.db``) would otherwise land in the checkout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-c", "from cli import main; raise SystemExit(main())", *args, "--out", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_reproduces_the_16k_incident(tmp_path: Path) -> None:
    report = tmp_path / "context.json"
    proc = _lpuperf(tmp_path, "compliance", "context", "--artifact", "sim-ctx16k", "--json", str(report))
    assert proc.returncode == 1, proc.stderr
    line = "context: FAIL: advertised 131072, failed at 65536: status UNAVAILABLE 'max tokens exceeded'"
    assert line in proc.stdout
    verdict = json.loads(report.read_text())
    assert verdict["passed"] is False and verdict["first_failure_tokens"] == 65536
    assert (tmp_path / "lpuperf.db").is_file(), proc.stdout  # the verdict is recorded in the tmp run store


def test_cli_passes_when_enforced_equals_advertised(tmp_path: Path) -> None:
    proc = _lpuperf(tmp_path, "compliance", "context", "--artifact", "sim-instant", "--json", str(tmp_path / "c.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "context: PASS: advertised 4096" in proc.stdout


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = _lpuperf(tmp_path, "compliance", "context", "--artifact", "sim-fp32", "--fault", "no_such_fault")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--fault: unknown fault 'no_such_fault'" in proc.stderr
