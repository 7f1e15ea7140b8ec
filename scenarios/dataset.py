"""The dataset format every stage reads: QSL, sim SUT, accuracy and compliance.

On disk a dataset is JSON Lines, optionally gzip-compressed (``.jsonl`` / ``.jsonl.gz``):

* line 1, the header::

    {"format": "lpuperf-dataset/1", "name": "...", "eos_token_id": 2,
     "tokenizer": "free text naming the tokenizer",
     "decoder": {"kind": "byte_pieces", "pieces": {"<id>": "<hex bytes>", ...}} | null}

* every further line, one sample::

    {"index": 0, "category": "qa" | "summarization" | "arithmetic" | ...,
     "prompt": "text", "input_ids": [int, ...],
     "target": "ground-truth text", "answer": "42" | null,
     "reference_ids": [int, ..., eos]}

``reference_ids`` is the FP32 reference model's output for the prompt, ending in EOS; the sim
backend replays it. ``answer`` is the exact numeric answer for arithmetic samples. Indices run
0..N-1 in order. Any violation raises :class:`DatasetError` naming the file, line and field.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypedDict

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictInt, ValidationError

from common import atomic_path

FORMAT = "lpuperf-dataset/1"
_MAX_TOKEN_ID = 2**31 - 1


class DatasetError(ValueError):
    """A dataset file is malformed; the message is one line naming file, line and field."""


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    name: str = Field(min_length=1)
    eos_token_id: StrictInt = Field(ge=0)
    tokenizer: str = ""
    decoder: dict[str, JsonValue] | None = None


class _SampleRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Strict ints: JSON true/false or 6.0 are not token ids, and a lax model would take them as 1/0/6.
    index: StrictInt = Field(ge=0)
    category: str = Field(min_length=1)
    prompt: str
    input_ids: list[StrictInt] = Field(min_length=1)
    target: str
    answer: str | None = None
    reference_ids: list[StrictInt] = Field(min_length=1)


class DatasetRow(TypedDict):
    """One sample line of the file, as :meth:`Dataset.iter_rows` yields it."""

    index: int
    category: str
    prompt: str
    input_ids: list[int]
    target: str
    answer: str | None
    reference_ids: list[int]


class ByteDecoder:
    """Decodes ids by concatenating each id's bytes and reading UTF-8 (byte-level BPE style).

    Special tokens (EOS and any id mapped to no bytes) decode to nothing, as
    ``skip_special_tokens=True`` would.
    """

    def __init__(self, pieces: dict[int, bytes]) -> None:
        self.pieces = pieces

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        get = self.pieces.get
        return b"".join(get(int(i), b"") for i in ids).decode("utf-8", errors="replace")

    def to_json(self) -> dict[str, JsonValue]:
        return {"kind": "byte_pieces", "pieces": {str(k): v.hex() for k, v in sorted(self.pieces.items())}}

    @classmethod
    def from_json(cls, raw: dict[str, JsonValue], where: str) -> ByteDecoder:
        pieces = raw.get("pieces")
        if raw.get("kind") != "byte_pieces" or not isinstance(pieces, dict):
            raise DatasetError(f"{where}: field 'decoder': expected {{'kind': 'byte_pieces', 'pieces': {{...}}}}")
        try:
            return cls({int(k): bytes.fromhex(_hex_text(v)) for k, v in pieces.items()})
        except (ValueError, TypeError):
            raise DatasetError(f"{where}: field 'decoder.pieces': expected {{id: hex string}}") from None


def _hex_text(value: JsonValue) -> str:
    if not isinstance(value, str):
        raise TypeError("a piece is not a hex string")
    return value


@dataclass
class Dataset:
    name: str
    eos_token_id: int
    categories: list[str]
    prompts: list[str]
    targets: list[str]
    answers: list[str | None]
    input_ids: list[np.ndarray]  # int32 each
    reference_ids: list[np.ndarray]  # int32 each, ends in EOS
    tokenizer: str = ""
    decoder: ByteDecoder | None = None
    source: str = ""
    _digest: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.prompts)

    def digest(self) -> str:
        """sha256 over the content that defines the benchmark (ids, targets, categories)."""
        if self._digest is None:
            h = hashlib.sha256()
            h.update(self.name.encode())
            for cat, tgt, inp, ref in zip(
                self.categories, self.targets, self.input_ids, self.reference_ids, strict=True
            ):
                h.update(cat.encode() + b"\0" + tgt.encode() + b"\0")
                h.update(inp.astype("<i4").tobytes() + b"\1" + ref.astype("<i4").tobytes() + b"\2")
            self._digest = h.hexdigest()
        return self._digest

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        if self.decoder is None:
            raise DatasetError(f"{self.source or self.name}: dataset has no decoder; pass a tokenizer")
        return self.decoder.decode(ids)

    def iter_rows(self) -> Iterator[DatasetRow]:
        for i in range(len(self)):
            yield {
                "index": i,
                "category": self.categories[i],
                "prompt": self.prompts[i],
                "input_ids": self.input_ids[i].tolist(),
                "target": self.targets[i],
                "answer": self.answers[i],
                "reference_ids": self.reference_ids[i].tolist(),
            }


def _open_text(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
    return f"field '{loc}': {err.get('msg', 'invalid')}"


def load_dataset(path: str | Path) -> Dataset:
    """Load and validate a dataset file; raise DatasetError with one clear line on bad input."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: dataset file not found")
    cats: list[str] = []
    prompts: list[str] = []
    targets: list[str] = []
    answers: list[str | None] = []
    inputs: list[np.ndarray] = []
    refs: list[np.ndarray] = []
    header: _Header | None = None
    decoder: ByteDecoder | None = None
    try:
        with _open_text(p, "r") as fh:
            for lineno, line in enumerate(fh, start=1):
                where = f"{p}:{lineno}"
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{where}: not valid JSON ({exc.msg})") from None
                if header is None:
                    try:
                        header = _Header.model_validate(raw)
                    except ValidationError as exc:
                        raise DatasetError(f"{where}: header {_first_error(exc)}") from None
                    if header.format != FORMAT:
                        raise DatasetError(f"{where}: field 'format': expected '{FORMAT}', got '{header.format}'")
                    if header.decoder is not None:
                        decoder = ByteDecoder.from_json(header.decoder, where)
                    continue
                try:
                    row = _SampleRow.model_validate(raw)
                except ValidationError as exc:
                    raise DatasetError(f"{where}: {_first_error(exc)}") from None
                if row.index != len(prompts):
                    raise DatasetError(f"{where}: field 'index': expected {len(prompts)}, got {row.index}")
                for name in ("input_ids", "reference_ids"):
                    ids = getattr(row, name)
                    if min(ids) < 0 or max(ids) > _MAX_TOKEN_ID:
                        raise DatasetError(f"{where}: field '{name}': expected int32 token ids >= 0")
                if row.reference_ids[-1] != header.eos_token_id:
                    raise DatasetError(
                        f"{where}: field 'reference_ids': expected to end with eos_token_id {header.eos_token_id}"
                    )
                cats.append(row.category)
                prompts.append(row.prompt)
                targets.append(row.target)
                answers.append(row.answer)
                inputs.append(np.asarray(row.input_ids, dtype=np.int32))
                refs.append(np.asarray(row.reference_ids, dtype=np.int32))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{p}: cannot read dataset ({exc.__class__.__name__}: {exc})") from None
    if header is None:
        raise DatasetError(f"{p}: empty file; expected a header line with format '{FORMAT}'")
    if not prompts:
        raise DatasetError(f"{p}: no samples after the header")
    return Dataset(
        name=header.name,
        eos_token_id=header.eos_token_id,
        categories=cats,
        prompts=prompts,
        targets=targets,
        answers=answers,
        input_ids=inputs,
        reference_ids=refs,
        tokenizer=header.tokenizer,
        decoder=decoder,
        source=str(p),
    )


def save_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves a half-written dataset."""
    p = Path(path)
    header = {
        "format": FORMAT,
        "name": ds.name,
        "eos_token_id": ds.eos_token_id,
        "tokenizer": ds.tokenizer,
        "decoder": ds.decoder.to_json() if ds.decoder else None,
    }
    # The temp name keeps ``.gz`` last so _open_text compresses it as it will the final file.
    with atomic_path(p, suffix=".tmp" + (".gz" if p.suffix == ".gz" else "")) as tmp, _open_text(tmp, "w") as fh:
        fh.write(json.dumps(header) + "\n")
        for row in ds.iter_rows():
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    return p
