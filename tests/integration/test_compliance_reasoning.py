"""TEST07 and TEST09 on the reasoning sim with real LoadGen passes, and each fails on its planted SUT fault.

One in-process SUT serves the instant reasoning sim for gpt-oss-120b (the packaged 40-sample set at full
reasoning length, a zero-time schedule) behind a test-only wrapper that plants a fault on demand, so the
same SUT can answer correctly in the accuracy pass and wrongly afterwards:

======================  ==========================  =====================  ============================
fault                   accuracy pass (AccuracyOnly)  TEST07                 TEST09
======================  ==========================  =====================  ============================
(none)                  passes the target            PASS                   PASS (mean 1278.2 tokens)
wrong answers (perf)    passes (fault off then)      FAIL (< 60.698)        PASS (lengths unchanged)
truncated outputs       -                            -                      FAIL (below 1150.38)
padded outputs          -                            -                      FAIL (above 1406.02)
======================  ==========================  =====================  ============================

"Wrong answers" serves each prompt the answer of the next sample (a different problem); "truncated"
keeps a third of each output; "padded" repeats each output's reasoning once more before its answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

pytestmark = pytest.mark.integration

BENCHMARK = "gpt-oss-120b"
DATASET = "reasoning:gpt-oss-120b"
INSTANT = {"prefill_base_s": 0.0, "prefill_per_token_s": 0.0, "decode_step_s": 0.0}


class PlantedFaults:
    """A test-only backend around the instant reasoning sim: ``fault`` (set by the test) alters its answers."""

    config_model: ClassVar[Any] = None

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fault: str | None = None
        prompts = [np.ascontiguousarray(p, dtype=np.int32) for p in inner.dataset.input_ids]
        self._next = {p.tobytes(): prompts[(i + 1) % len(prompts)] for i, p in enumerate(prompts)}

    @property
    def manifest(self) -> Any:
        return self.inner.manifest

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    def queue_depth(self) -> int:
        return 0

    def active_batch(self) -> int:
        return 0

    def immediate_answer(self, request: Any) -> tuple[list[int], Any]:
        from sut import GenerationEnd

        asked = request
        if self.fault == "wrong_answers":
            key = np.ascontiguousarray(request.input_ids, dtype=np.int32).tobytes()
            asked = dataclasses.replace(request, input_ids=self._next[key])
        answer = self.inner.immediate_answer(asked)
        assert answer is not None, "the instant sim answers at once"
        tokens, end = answer
        n_reasoning = asked.output_reasoning_tokens
        if self.fault == "truncated":
            tokens = tokens[: max(2, len(tokens) // 3)]
            n_reasoning = min(n_reasoning, len(tokens))
        elif self.fault == "padded":
            tokens = tokens[:n_reasoning] * 2 + tokens[n_reasoning:]
            n_reasoning *= 2
        request.output_reasoning_tokens = n_reasoning
        return list(tokens), GenerationEnd(n_tokens=len(tokens), finish_reason=end.finish_reason)

    async def generate(self, request: Any) -> AsyncIterator[Sequence[int] | Any]:
        from sut import FinalTokens

        tokens, end = self.immediate_answer(request)
        yield FinalTokens(tokens)
        yield end


@pytest.fixture(scope="module")
def sut() -> Iterator[tuple[str, PlantedFaults]]:
    from sut import EmbeddedServer, create_backend

    inner = create_backend({"kind": "sim", "artifact": "sim-reasoning", "dataset": DATASET, **INSTANT})
    backend = PlantedFaults(inner)
    server = EmbeddedServer(backend)  # type: ignore[arg-type]
    try:
        yield server.address, backend
    finally:
        server.stop()


def _cfg(kind: str, address: str, out: Path, run_id: str, **extra: Any) -> Any:
    from compliance import Test07Config, Test09Config

    model = Test07Config if kind == "TEST07" else Test09Config
    return model(scenario="Offline", benchmark=BENCHMARK, sut=address, out_dir=out, run_id=run_id, **extra)


def _test07(address: str, out: Path, run_id: str) -> Any:
    from compliance import run_test07
    from workflows._compliance_runs import ScorerScript

    script = ScorerScript(BENCHMARK)
    return run_test07(_cfg("TEST07", address, out, run_id), script, script.name)


def _test09(address: str, out: Path, run_id: str) -> Any:
    from compliance import run_test09

    return run_test09(_cfg("TEST09", address, out, run_id))


def test_clean_sut_passes_both(sut: tuple[str, PlantedFaults], tmp_path: Path) -> None:
    address, backend = sut
    backend.fault = None
    t07, t09 = _test07(address, tmp_path, "clean"), _test09(address, tmp_path, "clean")
    assert t07.passed, t07.message
    assert t07.test07.score is not None and t07.test07.score >= 60.698
    assert t07.test07.n_entries == 40 and not t07.audit_problem
    assert t09.passed, t09.message
    assert t09.test09.n_samples == 40
    assert 1150.38 <= t09.test09.mean_output_tokens <= 1406.02
    text = (tmp_path / "clean" / "Offline" / "TEST09" / "verify_output_len.txt").read_text()
    assert text.endswith("\nTEST PASS\n") and "Min threshold: 1150.38\nMax threshold: 1406.02\n" in text
    verify07 = (tmp_path / "clean" / "Offline" / "TEST07" / "verify_accuracy.txt").read_text()
    assert "'exact_match': " in verify07 and verify07.endswith("Accuracy check pass: True\nTEST PASS\n")
    for test in ("TEST07", "TEST09"):
        layout = tmp_path / "clean" / "Offline" / test
        assert (layout / "accuracy" / "mlperf_log_accuracy.json").is_file()
        assert (layout / "performance" / "run_1" / "mlperf_log_detail.txt").is_file()
        assert "*.*.performance_issue_unique = 1" in (layout / "audit.config").read_text()


def test_wrong_answers_in_performance_mode_fail_test07_only(sut: tuple[str, PlantedFaults], tmp_path: Path) -> None:
    """The accuracy pass (fault off) meets the target; the same SUT answering wrongly in performance mode fails TEST07."""
    from loadgen_harness import RunConfig, run_benchmark
    from workflows._compliance_runs import ScorerScript

    address, backend = sut
    backend.fault = None
    acc = run_benchmark(
        RunConfig(scenario="Offline", mode="accuracy", benchmark=BENCHMARK, sut=address, out_dir=tmp_path, run_id="acc")
    )
    script = ScorerScript(BENCHMARK)
    accuracy_score = _score(script(Path(acc.log_dir) / "mlperf_log_accuracy.json"))
    assert accuracy_score >= 82.2987  # MLPerf v6.1's gpt-oss-120b target: the accuracy pass passes
    backend.fault = "wrong_answers"
    try:
        t07, t09 = _test07(address, tmp_path, "wrong"), _test09(address, tmp_path, "wrong")
    finally:
        backend.fault = None
    assert not t07.passed
    assert t07.test07.score is not None and t07.test07.score < 60.698, t07.message
    assert t07.test07.verify_text.endswith("Accuracy check pass: False\nTEST FAIL\n")
    assert t09.passed, t09.message  # the outputs are as long as ever: TEST09 cannot see it


def _score(output: str) -> float:
    from compliance import parse_score

    score = parse_score(output)
    assert score is not None, output
    return score


@pytest.mark.parametrize(("fault", "failing"), [("truncated", "min"), ("padded", "max")])
def test_truncated_and_padded_outputs_fail_test09(
    sut: tuple[str, PlantedFaults], tmp_path: Path, fault: str, failing: str
) -> None:
    address, backend = sut
    backend.fault = fault
    try:
        t09 = _test09(address, tmp_path, fault)
    finally:
        backend.fault = None
    assert not t09.passed
    report = t09.test09
    assert (report.min_check_pass, report.max_check_pass) == (failing != "min", failing != "max")
    assert report.verify_lines[-1] == "TEST FAIL"
    assert f"{'below the minimum' if failing == 'min' else 'above the maximum'}" in t09.message


@pytest.fixture(scope="module")
def gpt_oss_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """``submission run`` for gpt-oss-120b (Offline) on the spawned reasoning sim: TEST07 and TEST09, no TEST06."""
    from workflows._submission import SubmissionConfig, SubmissionRunConfig, run_submission

    out = tmp_path_factory.mktemp("gpt-oss-submission")
    run = SubmissionRunConfig(scenario="Offline", benchmark=BENCHMARK, out_dir=out, run_id="sub")
    scen, report = run_submission(run, SubmissionConfig(submitter="acme", system="sim-node"), echo=lambda _: None)
    return scen, report


def test_submission_carries_test07_and_test09_instead_of_test06(gpt_oss_tree: tuple[Path, Any]) -> None:
    scen, report = gpt_oss_tree
    assert scen.parts[-2:] == (BENCHMARK, "Offline")
    for rel in (
        "TEST07/verify_accuracy.txt",
        "TEST07/accuracy/accuracy.txt",
        "TEST07/accuracy/mlperf_log_accuracy.json",
        "TEST07/performance/run_1/mlperf_log_detail.txt",
        "TEST09/verify_output_len.txt",
        "TEST09/accuracy/mlperf_log_accuracy.json",
    ):
        assert (scen / rel).is_file(), rel
    assert not (scen / "TEST06").exists()
    assert (scen / "TEST07" / "accuracy" / "accuracy.txt").read_text().startswith("hash=")
    assert "TEST PASS" in (scen / "TEST09" / "verify_output_len.txt").read_text()
    # A quick tree of one scenario: labelled, short of the round's scenarios, counts and scores, and nothing
    # about compliance (no missing TEST06, no failing TEST07/TEST09).
    codes = {f.code for f in report.findings}
    assert "not-submittable" in codes, [f.line for f in report.findings]
    rehearsal = {"performance-sample-count", "accuracy-coverage", "accuracy-target", "offline-samples"}
    assert codes <= {"not-submittable", "required-scenario", *rehearsal}, [f.line for f in report.findings]


def test_checker_rejects_a_failed_or_missing_test09(gpt_oss_tree: tuple[Path, Any], tmp_path: Path) -> None:
    import shutil

    from workflows._submission_check import check_submission

    scen, _ = gpt_oss_tree
    root = scen.parents[5]
    copy = tmp_path / "tree"
    shutil.copytree(root, copy)
    copied = copy / scen.relative_to(root)
    verify = copied / "TEST09" / "verify_output_len.txt"
    verify.write_text(verify.read_text().replace("TEST PASS", "TEST FAIL"))
    (copied / "TEST07" / "verify_accuracy.txt").unlink()
    lines = [f.line for f in check_submission(copy).findings]
    assert any(line.startswith("[TEST09]") and "no 'TEST PASS'" in line for line in lines), lines
    assert any(line.startswith("[missing-file]") and "TEST07/verify_accuracy.txt" in line for line in lines), lines


def test_mlperfs_sampling_that_logs_a_fraction_fails_the_coverage_check(
    sut: tuple[str, PlantedFaults], tmp_path: Path
) -> None:
    """Upstream TEST07 logs 990 of 6396 Offline samples (~15 %); an audit.config that samples fails, naming why."""
    from compliance import run_test09

    address, backend = sut
    backend.fault = None
    audit = tmp_path / "audit.config"
    audit.write_text(
        "*.*.mode = 2\n*.*.accuracy_log_rng_seed = 720381539243781796\n*.*.accuracy_log_sampling_target = 6\n"
        "*.*.min_query_count = 40\n*.*.min_duration = 0\n*.*.performance_issue_unique = 1\n"
        "*.*.sample_concatenate_permutation = 0\n"
        "*.*.test09_min_output_tokens = 1150.38\n*.*.test09_max_output_tokens = 1406.02\n"
    )
    t09 = run_test09(_cfg("TEST09", address, tmp_path, "sampled", audit_config=audit))
    report = t09.test09
    assert 0 < report.n_samples < 40
    assert not t09.passed and not t09.audit_problem
    assert report.coverage_problem.startswith(
        f"TEST09 needs every sample logged: the accuracy log has {report.n_samples}"
    )
    assert "the run issued 40" in t09.message
