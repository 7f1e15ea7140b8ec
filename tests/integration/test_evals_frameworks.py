"""Real ``inspect eval`` and ``lm_eval`` processes against lpuperf SUTs over gRPC.

* Inspect: ``--model lpuperf/embedded:sim-instant`` (an embedded SUT spawned by the provider) and a
  running SUT secured with TLS and a bearer token (``-M tls_ca=... -M token_file=...``); the log's score
  equals a direct scoring of the sim's own answers, each answer equals the sim's, usage and per-request
  TTFT/TPOT are recorded. A wrong token fails the eval.
* lm-eval through ``lpuperf evals lm-eval``: a generate_until task's exact match equals the direct count;
  a multiple_choice task (loglikelihood) is refused in one line naming the task type.

Tasks and datasets are written by the tests in each framework's local format (tests/evals_tasks.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evals import read_inspect_log
from tests.evals_tasks import (
    EvalSample,
    embedded_samples,
    eval_env,
    includes_score,
    sim_answers,
    write_inspect_task,
    write_lm_eval_tasks,
)
from tests.integration.test_secure_transport import TOKEN, serve
from tests.tls_pki import make_pki

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _inspect(task: Path, model: str, log_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # Inspect finds task files relative to its working directory only.
    cmd = [str(BIN / "inspect"), "eval", task.name, "--model", model, "--log-dir", str(log_dir)]
    cmd += ["--log-format", "json", "--display", "none", *extra]
    env = eval_env(log_dir.parent)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=task.parent)


@pytest.fixture(scope="module")
def samples() -> list[EvalSample]:
    return embedded_samples(6)


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory, samples: list[EvalSample]) -> Path:
    return write_inspect_task(tmp_path_factory.mktemp("inspect"), samples)


def _check_log(log_dir: Path, samples: list[EvalSample], target: str) -> None:
    logs = list(log_dir.glob("*.json"))
    assert len(logs) == 1, logs
    score = read_inspect_log(logs[0], target)
    answers = sim_answers(samples)
    expected = includes_score(samples, answers)
    assert 0 < sum(expected) < len(expected), "the task should have right and wrong answers"
    assert score.overall.score == pytest.approx(sum(expected) / len(expected))
    by_id = {s.sample_id.split("#")[0]: s for s in score.samples}
    for sample, answer in zip(samples, answers, strict=True):
        got = by_id[str(sample.index)]
        assert got.answer == answer
        assert got.category == sample.category
        assert got.ttft_ms is not None and got.ttft_ms >= 0
    raw = json.loads(logs[0].read_text())
    usage = raw["samples"][0]["output"]["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_inspect_eval_against_an_embedded_sim_scores_as_a_direct_scoring(
    tmp_path: Path, task: Path, samples: list[EvalSample]
) -> None:
    done = _inspect(task, "lpuperf/embedded:sim-instant", tmp_path / "logs")
    assert done.returncode == 0, done.stderr[-2000:]
    _check_log(tmp_path / "logs", samples, "embedded:sim-instant")


@pytest.mark.slow  # two Inspect processes and a secured SUT: ~30 s on a busy machine
def test_inspect_eval_over_tls_with_a_token_and_a_wrong_token_fails(
    tmp_path: Path, task: Path, samples: list[EvalSample]
) -> None:
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "wrong").write_text("not-" + TOKEN + "\n")
    tls = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    args = ["--artifact", "sim-instant", "--auth-token-file", str(tmp_path / "token"), *tls]
    with serve(tmp_path, "tls", args) as sut:
        ok = _inspect(
            task, f"lpuperf/{sut.address}", tmp_path / "logs", "-M", f"tls_ca={pki.ca}", "-M", f"token_file={tmp_path / 'token'}"
        )  # fmt: skip
        assert ok.returncode == 0, ok.stderr[-2000:]
        _check_log(tmp_path / "logs", samples, sut.address)
        bad = _inspect(
            task, f"lpuperf/{sut.address}", tmp_path / "bad", "-M", f"tls_ca={pki.ca}", "-M", f"token_file={tmp_path / 'wrong'}"
        )  # fmt: skip
        assert bad.returncode != 0
        assert "UNAUTHENTICATED" in bad.stderr + bad.stdout or "token" in (bad.stderr + bad.stdout).lower()
        assert TOKEN not in bad.stderr + bad.stdout


def _lm_eval(include: Path, task_name: str, out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cli", "evals", "lm-eval", "--model", "lpuperf"]
    cmd += ["--model_args", "target=embedded:sim-instant", "--tasks", task_name, "--include_path", str(include)]
    cmd += ["--output_path", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=eval_env(out.parent), cwd=out.parent)


@pytest.mark.slow  # two lm-eval processes: ~45 s on a busy machine (the fast variant runs the model in-process)
def test_lm_eval_generate_until_matches_a_direct_count_and_loglikelihood_is_refused(
    tmp_path: Path, samples: list[EvalSample]
) -> None:
    qa = [s for s in samples if s.category == "qa"]
    include = write_lm_eval_tasks(tmp_path / "tasks", qa)
    done = _lm_eval(include, "lpu_gen", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("results_*.json")]
    assert len(results) == 1
    got = results[0]["results"]["lpu_gen"]["exact_match,none"]
    answers = [a.split("\n\n")[0] for a in sim_answers(qa)]  # the task's until: cut at the first blank line
    expected = sum(a.strip() == s.target.strip() for s, a in zip(qa, answers, strict=True)) / len(qa)
    assert got == pytest.approx(expected)
    refused = _lm_eval(include, "lpu_choice", tmp_path / "out2")
    assert refused.returncode == 2
    assert "task type 'loglikelihood'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_lm_eval_model_in_process_answers_as_the_sim_and_refuses_loglikelihood(samples: list[EvalSample]) -> None:
    from common import UsageError
    from evals._lm_eval_model import LpuperfLM

    class Request:  # lm-eval's Instance carries (context, gen_kwargs) in .args
        def __init__(self, prompt: str) -> None:
            self.args = (prompt, {"until": ["\n\n"], "max_gen_toks": 64})

    qa = [s for s in samples if s.category == "qa"]
    lm = LpuperfLM(target="embedded:sim-instant", concurrency=3)
    try:
        got = lm.generate_until([Request(s.prompt) for s in qa])
        assert got == [a.split("\n\n")[0] for a in sim_answers(qa)]
        assert all(r.ttft_ms >= 0 and r.output_tokens > 0 for r in lm.replies)
        with pytest.raises(UsageError, match="task type 'loglikelihood'"):
            lm.loglikelihood([Request(qa[0].prompt)])
    finally:
        lm._sut.close()


def test_reasoning_tokens_pass_through_to_inspect_as_reasoning_content() -> None:
    import asyncio

    from inspect_ai.model import ContentReasoning, ContentText, GenerateConfig

    from evals import EvalSut
    from evals._inspect_provider import _output, _settings
    from scenarios import resolve_dataset

    reasoning_set = resolve_dataset("reasoning:deepseek-r1")
    shortest = min(range(len(reasoning_set)), key=lambda i: len(reasoning_set.reference_ids[i]))
    prompt = reasoning_set.prompts[shortest]  # the shortest reasoning: the sim decodes it in real time
    target = EvalSut("embedded:sim-reasoning")  # its tokenizer follows the manifest: the reasoning set's
    try:

        async def ask() -> object:
            reply = await target.generate(prompt, _settings(GenerateConfig(max_tokens=20000)))
            await target.close_channels()
            return reply

        reply = asyncio.run(asyncio.wait_for(ask(), 120))
    finally:
        target.close()
    out = _output("embedded:sim-reasoning", reply)  # type: ignore[arg-type]
    reasoning, text = out.choices[0].message.content  # type: ignore[misc]
    assert isinstance(reasoning, ContentReasoning) and isinstance(text, ContentText)
    assert reasoning.reasoning.startswith("We need to work this out.")  # the reasoning comes first, apart
    assert text.text.strip() and text.text.strip() not in reasoning.reasoning
    assert out.usage is not None and out.usage.reasoning_tokens and out.usage.reasoning_tokens < out.usage.output_tokens
    assert out.stop_reason == "stop" and out.metadata and out.metadata["ttft_ms"] >= 0
