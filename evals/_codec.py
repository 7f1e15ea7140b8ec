"""Text <-> token ids for evals: an eval framework speaks text, the gRPC SUT speaks token ids.

The artifact's own tokenizer does the mapping, on the client side, so the wire protocol and the SUT's
per-token path stay as they are:

* ``dataset:NAME`` (the sim's artifacts, default ``dataset:embedded``): a prompt equal to one of the
  dataset's prompts maps to that sample's very ids (so the sim finds its reference answer, as the HTTP
  front does), a text equal to a reference answer to that answer's ids (so a scored continuation is the
  sim's own token sequence); any other text goes through the dataset's byte-piece encoder. Answers decode through the
  dataset's byte decoder.
* ``hf:NAME_OR_PATH`` (the transformers backend's artifacts): the model's Hugging Face tokenizer, from a
  local path or the local cache (the ``hf`` extra).

The default follows the artifact manifest's backend: ``sim`` -> ``dataset:embedded`` (a reasoning sim:
``dataset:reasoning:<benchmark>``); ``transformers`` ->
``hf:<manifest model>``. Any other backend needs an explicit ``tokenizer`` model argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import JsonValue

from common import UsageError
from scenarios import DatasetError, resolve_dataset
from sut import ByteEncoder

__all__ = ["TextCodec", "codec_for", "default_tokenizer_spec"]


class TextCodec(Protocol):
    """What an eval client needs of a tokenizer."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class DatasetCodec:
    """A dataset's prompt lookup, byte-piece encoder and byte decoder (the sim's artifacts)."""

    def __init__(self, name: str) -> None:
        try:
            dataset = resolve_dataset(name)
        except DatasetError as exc:
            raise UsageError(f"tokenizer 'dataset:{name}': {exc}") from None
        if dataset.decoder is None:
            raise UsageError(f"tokenizer 'dataset:{name}': the dataset has no decoder; expected a text dataset")
        self._decoder = dataset.decoder
        self._encoder = ByteEncoder(dataset.decoder.pieces)
        self._known_ids = {p: ids.tolist() for p, ids in zip(dataset.prompts, dataset.input_ids, strict=True)}
        # A reference answer's text (its trailing EOS dropped) maps to its ids as well: greedy longest match
        # segments text differently from the dataset, and a scored continuation must be the artifact's own
        # token sequence for its log-probabilities to mean anything.
        eos = int(dataset.eos_token_id)
        for ref in dataset.reference_ids:
            ids = ref.tolist()
            while ids and ids[-1] == eos:
                ids.pop()
            if ids:
                self._known_ids.setdefault(self._decoder.decode(ids), ids)

    def encode(self, text: str) -> list[int]:
        known = self._known_ids.get(text)
        return list(known) if known is not None else list(self._encoder.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self._decoder.decode(ids)


class HfCodec:
    """A Hugging Face tokenizer (the ``hf`` extra), loaded from a path or the local cache only."""

    def __init__(self, name: str) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise UsageError(f"tokenizer 'hf:{name}' needs transformers: pip install 'lpuperf[hf]'") from None
        try:
            self._tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"tokenizer 'hf:{name}': {first}") from None

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=True))


def default_tokenizer_spec(artifact: dict[str, JsonValue]) -> str | None:
    """The tokenizer an artifact implies by its manifest (None: the caller must name one)."""
    backend = artifact.get("backend")
    reasoning = artifact.get("reasoning")
    if backend == "sim" and isinstance(reasoning, dict) and reasoning.get("benchmark"):
        return f"dataset:reasoning:{reasoning['benchmark']}"  # the reasoning sim answers the reasoning set
    if backend == "sim":
        return "dataset:embedded"
    if backend == "transformers" and isinstance(artifact.get("model"), str) and artifact["model"]:
        return f"hf:{artifact['model']}"
    return None


def codec_for(spec: str | None, artifact: dict[str, JsonValue]) -> TextCodec:
    """The codec ``spec`` names (``dataset:NAME`` | ``hf:NAME``), else the artifact's default; UsageError
    (one line naming the ``tokenizer`` argument) when neither gives one."""
    spec = spec or default_tokenizer_spec(artifact)
    if spec is None:
        raise UsageError(
            f"tokenizer: artifact {artifact.get('artifact_id', '?')} (backend {artifact.get('backend', '?')}) "
            "names no tokenizer; pass tokenizer=dataset:NAME or tokenizer=hf:NAME"
        )
    kind, sep, name = spec.partition(":")
    if not sep or not name or kind not in ("dataset", "hf"):
        raise UsageError(f"tokenizer: expected dataset:NAME or hf:NAME, got '{spec}'")
    return DatasetCodec(name) if kind == "dataset" else HfCodec(name)
