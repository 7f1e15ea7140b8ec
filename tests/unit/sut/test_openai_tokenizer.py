"""Relay id mapping with a Hugging Face tokenizer directory, when the upstream returns only text."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from scenarios import resolve_dataset
from sut import GenerateRequest, GenerationEnd, backends
from sut._http import start_http_front
from sut._openai import OpenAIBackend, OpenAIConfig, OpenAIConfigError

DATASET = "synthetic:6:11"


def _train_tokenizer(directory: Path) -> Any:
    """A small byte-level BPE trained on the dataset's own text, saved as a tokenizer directory."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    ds = resolve_dataset(DATASET)
    assert ds.decoder is not None
    corpus = [ds.decoder.decode(r) for r in ds.reference_ids] + ds.prompts
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")
    fast.save_pretrained(str(directory))
    return fast


def test_text_only_upstream_is_mapped_with_the_hf_tokenizer(tmp_path: Path) -> None:
    tok = _train_tokenizer(tmp_path / "tok")
    ds = resolve_dataset(DATASET)
    decoder = ds.decoder
    assert decoder is not None

    async def main() -> None:
        sim: Any = backends.create({"kind": "sim", "artifact": "sim-instant", "dataset": DATASET})
        await sim.start()
        front = await start_http_front(sim, "127.0.0.1", 0)
        cfg = OpenAIConfig(
            base_url=f"http://{front.address}/v1", tokenizer=str(tmp_path / "tok"), request_token_ids=False
        )
        relay = OpenAIBackend(cfg, env={})
        assert relay.manifest.extra["ids"] == "tokenizer hf:tok"
        await relay.start()
        try:
            for i in range(3):
                req = GenerateRequest(
                    request_id=str(i), input_ids=ds.input_ids[i], max_new_tokens=1000, prompt_text=ds.prompts[i]
                )
                ids: list[int] = []
                end: GenerationEnd | None = None
                async for item in relay.generate(req):
                    if isinstance(item, GenerationEnd):
                        end = item
                    else:
                        ids.extend(item)
                assert end is not None and end.info["ids"] == "tokenizer hf:tok"
                text = decoder.decode(ds.reference_ids[i])
                assert tok.decode(ids, skip_special_tokens=True) == text
                assert ids[-1] == tok.eos_token_id  # the answer ended on EOS upstream: closed with our EOS id
                # n_tokens stays the upstream's own count, whatever our tokenizer makes of the text.
                assert end.n_tokens == ds.reference_ids[i].size
        finally:
            await relay.stop()
            await front.stop()
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_unloadable_tokenizer_dir_is_one_clear_line(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(OpenAIConfigError, match="field 'tokenizer': cannot load"):
        OpenAIBackend(OpenAIConfig(base_url="http://127.0.0.1:9/v1", tokenizer=str(tmp_path / "missing")), env={})
