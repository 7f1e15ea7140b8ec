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
     "reference_ids": [int, ..., eos],
     # optional, reasoning benchmarks (MLPerf v6.1 deepseek-r1, gpt-oss-120b):
     "dataset": "gpqa", "ground_truth": "C", "reference_reasoning_tokens": 812,
     "tests": {"inputs": ["..."], "outputs": ["..."], "fn_name": "f" | null}}

``reference_ids`` is the FP32 reference model's output for the prompt, ending in EOS; the sim
backend replays it. ``answer`` is the exact numeric answer for arithmetic samples. Indices run
0..N-1 in order. The optional fields carry what MLPerf's exact-match evaluators route and grade on
(docs/dataset-format.md); old files without them load unchanged. Any violation raises
:class:`DatasetError` naming the file, line and field.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NotRequired, TypedDict

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictInt, StrictStr, ValidationError

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


class CodeTests(BaseModel):
    """A code sample's test cases, as LiveCodeBench's ``get_evaluation_sample()`` has them.

    Call-based when ``fn_name`` is set (each input is newline-separated JSON arguments, each output
    JSON), else stdin/stdout text.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    inputs: list[str] = Field(min_length=1)
    outputs: list[str] = Field(min_length=1)
    fn_name: str | None = None


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
    # Reasoning benchmarks (optional): the sub-dataset the reference evaluator routes on, its ground
    # truth (always a string, as the evaluators compare text), how many leading reference ids are reasoning.
    dataset: StrictStr | None = Field(default=None, min_length=1)
    ground_truth: StrictStr | None = None
    reference_reasoning_tokens: StrictInt | None = Field(default=None, ge=0)
    tests: CodeTests | None = None


class DatasetRow(TypedDict):
    """One sample line of the file, as :meth:`Dataset.iter_rows` yields it (optional keys only when set)."""

    index: int
    category: str
    prompt: str
    input_ids: list[int]
    target: str
    answer: str | None
    reference_ids: list[int]
    dataset: NotRequired[str]
    ground_truth: NotRequired[str]
    reference_reasoning_tokens: NotRequired[int]
    tests: NotRequired[dict[str, JsonValue]]


# The reference evaluators route a sample by the first of these keys that is a substring of its
# lower-cased dataset name (MLPerf deepseek-r1 / gpt-oss-120b eval_accuracy.py), so "gpqa_diamond" is gpqa.
ROUTED_DATASETS = ("gpqa", "mmlu_pro", "math500", "aime", "livecodebench")
_LETTERS = {"gpqa": "ABCD", "mmlu_pro": "ABCDEFGHIJ"}


def routed_dataset(name: str) -> str | None:
    """The evaluator kind a dataset name routes to (``gpqa``, ``mmlu_pro``, ...), None when unknown."""
    low = name.lower()
    return next((key for key in ROUTED_DATASETS if key in low), None)


def check_ground_truth(dataset: str, truth: str) -> str | None:
    """Why ``truth`` cannot be a ground truth of ``dataset``'s kind (None when it can, or the kind is unknown)."""
    kind = routed_dataset(dataset)
    if kind in _LETTERS:
        letters = _LETTERS[kind]
        if len(truth) != 1 or truth.upper() not in letters:
            return f"expected one letter {letters[0]}-{letters[-1]} for dataset '{dataset}', got {truth!r}"
    elif kind == "aime":
        if not truth.strip().isdigit() or int(truth) > 999:
            return f"expected an integer 0-999 for dataset '{dataset}', got {truth!r}"
    elif kind is not None and not truth.strip():
        return f"expected a non-empty string for dataset '{dataset}'"
    return None


def _check_reasoning_fields(row: _SampleRow, where: str) -> None:
    """Cross-field checks of the optional reasoning fields; one line naming the field."""
    if row.ground_truth is not None:
        if row.dataset is None:
            raise DatasetError(f"{where}: field 'dataset': required with 'ground_truth' (the evaluator routes on it)")
        why = check_ground_truth(row.dataset, row.ground_truth)
        if why is not None:
            raise DatasetError(f"{where}: field 'ground_truth': {why}")
    n_reasoning = row.reference_reasoning_tokens
    if n_reasoning is not None and n_reasoning >= len(row.reference_ids):
        raise DatasetError(
            f"{where}: field 'reference_reasoning_tokens': expected fewer than the {len(row.reference_ids)} "
            f"reference ids (the EOS is an answer token), got {n_reasoning}"
        )
    if row.tests is not None and len(row.tests.inputs) != len(row.tests.outputs):
        raise DatasetError(
            f"{where}: field 'tests.outputs': expected one output per input "
            f"({len(row.tests.inputs)} inputs, {len(row.tests.outputs)} outputs)"
        )


class ByteDecoder:
    """Decodes ids by concatenating each id's bytes and reading UTF-8 (byte-level BPE style).

    ``special`` maps the ids of special tokens (EOS, chat and reasoning markers such as harmony's
    ``<|channel|>``) to their text. They decode to nothing by default, as ``skip_special_tokens=True``
    would, and to their text with ``skip_special_tokens=False`` (what MLPerf's gpt-oss-120b evaluator
    decodes with). An id in neither map decodes to nothing.
    """

    def __init__(self, pieces: dict[int, bytes], special: dict[int, str] | None = None) -> None:
        self.pieces = pieces
        self.special = dict(special or {})
        self._with_special = {**pieces, **{k: v.encode() for k, v in self.special.items()}}

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        get = (self.pieces if skip_special_tokens else self._with_special).get
        return b"".join(get(int(i), b"") for i in ids).decode("utf-8", errors="replace")

    def token_id(self, text: str) -> int | None:
        """The id of a special token or a whole piece spelled ``text`` (special tokens first), else None."""
        for tid, spelled in self.special.items():
            if spelled == text:
                return tid
        raw = text.encode()
        return next((tid for tid, piece in self.pieces.items() if piece == raw), None)

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {
            "kind": "byte_pieces",
            "pieces": {str(k): v.hex() for k, v in sorted(self.pieces.items())},
        }
        if self.special:
            out["special"] = {str(k): v for k, v in sorted(self.special.items())}
        return out

    @classmethod
    def from_json(cls, raw: dict[str, JsonValue], where: str) -> ByteDecoder:
        pieces = raw.get("pieces")
        special = raw.get("special", {})
        if raw.get("kind") != "byte_pieces" or not isinstance(pieces, dict):
            raise DatasetError(f"{where}: field 'decoder': expected {{'kind': 'byte_pieces', 'pieces': {{...}}}}")
        if set(raw) - {"kind", "pieces", "special"}:
            extra = sorted(set(raw) - {"kind", "pieces", "special"})[0]
            raise DatasetError(f"{where}: field 'decoder.{extra}': unknown; expected kind, pieces, special")
        try:
            decoded = {int(k): bytes.fromhex(_hex_text(v)) for k, v in pieces.items()}
        except (ValueError, TypeError):
            raise DatasetError(f"{where}: field 'decoder.pieces': expected {{id: hex string}}") from None
        try:
            if not isinstance(special, dict):
                raise TypeError("not an object")
            specials = {int(k): _hex_text(v) for k, v in special.items()}
        except (ValueError, TypeError):
            raise DatasetError(f"{where}: field 'decoder.special': expected {{id: token text}}") from None
        both = sorted(set(specials) & set(decoded))
        if both:
            raise DatasetError(f"{where}: field 'decoder.special': id {both[0]} is also a byte piece")
        return cls(decoded, specials)


def _hex_text(value: JsonValue) -> str:
    if not isinstance(value, str):
        raise TypeError("a piece is not a string")
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
    # Reasoning benchmarks: parallel lists, None where a sample lacks the field (all None for old sets).
    datasets: list[str | None] = field(default_factory=list)
    ground_truths: list[str | None] = field(default_factory=list)
    reference_reasoning: list[int | None] = field(default_factory=list)
    tests: list[CodeTests | None] = field(default_factory=list)
    _digest: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.prompts)
        for name in ("datasets", "ground_truths", "reference_reasoning", "tests"):
            values = getattr(self, name)
            if not values:
                setattr(self, name, [None] * n)
            elif len(values) != n:
                raise DatasetError(
                    f"{self.source or self.name}: field '{name}': expected {n} entries, got {len(values)}"
                )

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def has_reasoning(self) -> bool:
        """Whether any reference output has reasoning tokens (a reasoning benchmark's set)."""
        return any(self.reference_reasoning)

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
            # The reasoning fields count only where present, so the digest of an older set is unchanged.
            for i, row in enumerate(self._reasoning_rows()):
                if row:
                    h.update(f"{i}\3".encode() + json.dumps(row, sort_keys=True).encode() + b"\4")
            self._digest = h.hexdigest()
        return self._digest

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        if self.decoder is None:
            raise DatasetError(f"{self.source or self.name}: dataset has no decoder; pass a tokenizer")
        return self.decoder.decode(ids, skip_special_tokens=skip_special_tokens)

    def iter_rows(self) -> Iterator[DatasetRow]:
        for i, extra in enumerate(self._reasoning_rows()):
            row: DatasetRow = {
                "index": i,
                "category": self.categories[i],
                "prompt": self.prompts[i],
                "input_ids": self.input_ids[i].tolist(),
                "target": self.targets[i],
                "answer": self.answers[i],
                "reference_ids": self.reference_ids[i].tolist(),
            }
            row.update(extra)  # type: ignore[typeddict-item]
            yield row

    def _reasoning_rows(self) -> Iterator[dict[str, JsonValue]]:
        """Per sample, the optional reasoning fields that are set (an empty dict for older sets)."""
        for ds, truth, n_r, tests in zip(
            self.datasets, self.ground_truths, self.reference_reasoning, self.tests, strict=True
        ):
            extra: dict[str, JsonValue] = {}
            if ds is not None:
                extra["dataset"] = ds
            if truth is not None:
                extra["ground_truth"] = truth
            if n_r is not None:
                extra["reference_reasoning_tokens"] = n_r
            if tests is not None:
                extra["tests"] = tests.model_dump()
            yield extra


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
    extras: list[tuple[str | None, str | None, int | None, CodeTests | None]] = []
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
                _check_reasoning_fields(row, where)
                # Only the optional fields are kept: holding every row model would double the memory of a big set.
                extras.append((row.dataset, row.ground_truth, row.reference_reasoning_tokens, row.tests))
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
        datasets=[e[0] for e in extras],
        ground_truths=[e[1] for e in extras],
        reference_reasoning=[e[2] for e in extras],
        tests=[e[3] for e in extras],
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
