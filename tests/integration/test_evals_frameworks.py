"""Real ``inspect eval`` and ``lm_eval`` processes against lpuperf SUTs over gRPC.

* Inspect: ``--model lpuperf/embedded:sim-instant`` (an embedded SUT spawned by the provider) and a
  running SUT secured with TLS and a bearer token (``-M tls_ca=... -M token_file=...``); the log's score
  equals a direct scoring of the sim's own answers, each answer equals the sim's, usage and per-request
  TTFT/TPOT are recorded. A wrong token fails the eval.
* lm-eval through ``lpuperf evals lm-eval``: a generate_until task's exact match equals the direct count;
  a multiple_choice task (loglikelihood, the ``Score`` RPC) scores as a direct computation from the sim's
  own log-probabilities. In process: the model's log-likelihoods equal the sim's, a planted fault
  (``inverted_logprobs``) changes the score, and a backend without scoring is refused in one line naming
  the task type.

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
    ChoiceItem,
    EvalSample,
    choice_items,
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


def _direct_accuracy(items: list[ChoiceItem], faults: dict[str, bool] | None = None) -> float:
    """lm-eval's ``acc`` computed here: each choice's summed log-probability straight from the sim's scoring
    (no gRPC, no lm-eval), the item right when the argmax is the gold choice."""
    import asyncio

    import numpy as np

    from evals._codec import DatasetCodec
    from sut import ScoreRequest, SimBackend, SimConfig

    sim = SimBackend(SimConfig(artifact="sim-instant", faults=faults or {}))
    codec = DatasetCodec("embedded")

    def loglik(prompt: str, choice: str) -> float:
        ids = [np.array(codec.encode(t), dtype=np.int32) for t in (prompt, choice)]
        return sum(asyncio.run(sim.score(ScoreRequest("direct", ids[0], ids[1]))).logprobs)

    right = [int(np.argmax([loglik(it.prompt, c) for c in it.choices])) == it.gold for it in items]
    return sum(right) / len(right)


def _direct_rolling(text: str) -> float:
    """A text's log-likelihood from its start, straight from the sim's scoring: every token after the EOS (the
    texts here fit one window of the artifact's context)."""
    import asyncio

    import numpy as np

    from evals._codec import DatasetCodec
    from sut import ScoreRequest, SimBackend, SimConfig

    sim = SimBackend(SimConfig(artifact="sim-instant"))
    ids = np.array(DatasetCodec("embedded").encode(text), dtype=np.int32)
    assert ids.size < sim.manifest.max_context_tokens
    context = np.array([sim.manifest.eos_token_id], dtype=np.int32)
    return sum(asyncio.run(sim.score(ScoreRequest("direct", context, ids))).logprobs)


@pytest.mark.slow  # two lm-eval processes: ~45 s on a busy machine (the fast variant runs the model in-process)
def test_lm_eval_generate_until_and_multiple_choice_match_a_direct_scoring(
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
    choice = _lm_eval(include, "lpu_choice", tmp_path / "out2")
    assert choice.returncode == 0, choice.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in (tmp_path / "out2").rglob("results_*.json")]
    acc = results[0]["results"]["lpu_choice"]["acc,none"]
    expected = _direct_accuracy(choice_items(qa))
    assert 0 < expected < 1, "the task should have right and wrong answers"
    assert acc == pytest.approx(expected)


class _Request:  # lm-eval's Instance carries its arguments in .args
    def __init__(self, *args: object) -> None:
        self.args = args


def _model_accuracy(lm: object, items: list[ChoiceItem]) -> float:
    pairs = [(it, c) for it in items for c in it.choices]
    got = lm.loglikelihood([_Request(it.prompt, c) for it, c in pairs])  # type: ignore[attr-defined]
    at = 0
    right = 0
    for it in items:
        lls = [ll for ll, _ in got[at : at + len(it.choices)]]
        at += len(it.choices)
        right += max(range(len(lls)), key=lls.__getitem__) == it.gold
    return right / len(items)


def test_lm_eval_model_in_process_answers_and_scores_as_the_sim(samples: list[EvalSample]) -> None:
    from evals._lm_eval_model import LpuperfLM

    qa = [s for s in samples if s.category == "qa"]
    items = choice_items(qa)
    lm = LpuperfLM(target="embedded:sim-instant", concurrency=3)
    try:
        got = lm.generate_until([_Request(s.prompt, {"until": ["\n\n"], "max_gen_toks": 64}) for s in qa])
        assert got == [a.split("\n\n")[0] for a in sim_answers(qa)]
        assert all(r.ttft_ms >= 0 and r.output_tokens > 0 for r in lm.replies)
        expected = _direct_accuracy(items)
        assert 0 < expected < 1
        assert _model_accuracy(lm, items) == pytest.approx(expected)
        own = lm.loglikelihood([_Request(qa[0].prompt, sim_answers(qa[:1])[0])])
        assert own[0][1] is True and own[0][0] < 0  # the sim's own answer is its greedy continuation
        texts = [qa[0].prompt, qa[0].prompt + qa[1].prompt]
        rolling = lm.loglikelihood_rolling([_Request(t) for t in texts])
        assert rolling == pytest.approx([_direct_rolling(t) for t in texts], rel=1e-6)
        assert rolling[1] < rolling[0] < 0  # a longer text adds tokens, each below log 1
    finally:
        lm._sut.close()


def test_rolling_loglikelihood_over_windows_of_a_small_context(samples: list[EvalSample]) -> None:
    """A text longer than the artifact's context is scored in windows, each within the context, every token
    once: the sum equals the sim's own scores of lm-eval's disjoint windows."""
    import asyncio

    import numpy as np
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    from evals._codec import DatasetCodec
    from evals._lm_eval_model import LpuperfLM
    from sut import EmbeddedServer, ScoreRequest, SimBackend, SimConfig

    config = SimConfig(artifact="sim-instant", max_context_tokens=64)
    text = samples[0].prompt
    ids = DatasetCodec("embedded").encode(text)
    assert len(ids) > 3 * 64
    direct_sim = SimBackend(config)
    eos = direct_sim.manifest.eos_token_id
    windows = [make_disjoint_window(w) for w in get_rolling_token_windows(ids, eos, 63, 1)]
    assert sum(len(pred) for _, pred in windows) == len(ids)
    assert all(len(ctx) + len(pred) <= 64 for ctx, pred in windows)
    expected = 0.0
    for ctx, pred in windows:
        req = ScoreRequest("direct", np.array(ctx, dtype=np.int32), np.array(pred, dtype=np.int32))
        expected += sum(asyncio.run(direct_sim.score(req)).logprobs)
    with EmbeddedServer(SimBackend(config)) as server:
        lm = LpuperfLM(target=server.address)
        try:
            got = lm.loglikelihood_rolling([_Request(text)])
        finally:
            lm._sut.close()
    assert got == pytest.approx([expected], rel=1e-6)


def test_planted_inverted_logprobs_change_the_multiple_choice_score(samples: list[EvalSample]) -> None:
    from evals._lm_eval_model import LpuperfLM
    from sut import EmbeddedServer, SimBackend, SimConfig

    items = choice_items([s for s in samples if s.category == "qa"])
    faulty = SimBackend(SimConfig(artifact="sim-instant", faults={"inverted_logprobs": True}))
    with EmbeddedServer(faulty) as server:
        lm = LpuperfLM(target=server.address)
        try:
            got = _model_accuracy(lm, items)
        finally:
            lm._sut.close()
    assert got == pytest.approx(_direct_accuracy(items, {"inverted_logprobs": True}))
    assert got != pytest.approx(_direct_accuracy(items))


def test_a_sut_without_scoring_refuses_loglikelihood_in_one_line(samples: list[EvalSample]) -> None:
    from common import UsageError
    from evals._lm_eval_model import LpuperfLM
    from sut import EmbeddedServer
    from tests.unit.sut.test_sut_scoring import _NoScoring

    qa = [s for s in samples if s.category == "qa"]
    with EmbeddedServer(_NoScoring("embedded")) as server:  # type: ignore[arg-type]
        lm = LpuperfLM(target=server.address, tokenizer="dataset:embedded")
        try:
            with pytest.raises(UsageError, match="task type 'loglikelihood' \\(multiple_choice\\)") as refused:
                lm.loglikelihood([_Request(qa[0].prompt, "no")])
            assert "\n" not in str(refused.value)
            with pytest.raises(UsageError, match="task type 'loglikelihood_rolling'"):
                lm.loglikelihood_rolling([_Request(qa[0].prompt)])
            assert lm.generate_until([_Request(qa[0].prompt, {"max_gen_toks": 4})])  # generation still works
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


def test_inspect_logprobs_come_from_score_and_match_the_sims_greedy_answer(samples: list[EvalSample]) -> None:
    """``GenerateConfig(logprobs=True)``: each kept answer token with the sim's score of it (its own answer:
    every token greedy, ``log 0.99``); a stop string keeps only the whole tokens of the text it left; a SUT
    without scoring answers without logprobs."""
    import asyncio
    import math

    from inspect_ai.model import ChatMessageUser, GenerateConfig

    from evals._inspect_provider import LpuperfModelAPI
    from sut import EmbeddedServer
    from tests.unit.sut.test_sut_scoring import _NoScoring

    qa = next(s for s in samples if s.category == "qa")
    answer = sim_answers([qa])[0]
    message = [ChatMessageUser(content=qa.prompt)]

    def ask(api: LpuperfModelAPI, config: GenerateConfig) -> object:
        return asyncio.run(asyncio.wait_for(api.generate(message, [], "none", config), 60))

    api = LpuperfModelAPI("embedded:sim-instant")
    try:
        full = ask(api, GenerateConfig(logprobs=True))
        cut = ask(api, GenerateConfig(logprobs=True, stop_seqs=[answer.split()[3]]))
        plain = ask(api, GenerateConfig())
    finally:
        api.close()
    lp = full.choices[0].logprobs  # type: ignore[attr-defined]
    assert full.completion == answer  # type: ignore[attr-defined]
    assert "".join(t.token for t in lp.content) == answer
    assert all(t.logprob == pytest.approx(math.log(0.99)) for t in lp.content)
    kept = cut.choices[0].logprobs.content  # type: ignore[attr-defined]
    assert 0 < len(kept) < len(lp.content)
    joined = "".join(t.token for t in kept)  # the whole tokens inside the cut text, not one more
    assert cut.completion.startswith(joined)  # type: ignore[attr-defined]
    assert not cut.completion.startswith(joined + lp.content[len(kept)].token)  # type: ignore[attr-defined]
    assert plain.choices[0].logprobs is None  # type: ignore[attr-defined]
    with EmbeddedServer(_NoScoring("embedded")) as server:  # type: ignore[arg-type]
        api = LpuperfModelAPI(server.address)
        try:
            refused = ask(api, GenerateConfig(logprobs=True))
        finally:
            api.close()
    assert refused.completion == answer and refused.choices[0].logprobs is None  # type: ignore[attr-defined]
    assert refused.error is None  # type: ignore[attr-defined]
