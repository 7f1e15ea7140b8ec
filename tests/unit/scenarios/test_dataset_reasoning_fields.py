"""The dataset format's optional reasoning fields (issue 24, contract C4) and the decoder's special tokens.

Old files load unchanged (every new field None, same digest); a set with the fields round-trips through
a file; each malformed field is one line naming the file, the line and the field, also from the CLI.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scenarios import ByteDecoder, Dataset, DatasetError, load_dataset, resolve_dataset, save_dataset
from scenarios.dataset import CodeTests, check_ground_truth, routed_dataset

ROOT = Path(__file__).resolve().parents[3]
EOS = 0
HEADER = {"format": "lpuperf-dataset/1", "name": "t", "eos_token_id": EOS, "tokenizer": "", "decoder": None}


def _row(i: int = 0, **extra: Any) -> dict[str, Any]:
    row = {
        "index": i,
        "category": "gpqa",
        "prompt": "p",
        "input_ids": [5, 6],
        "target": "t",
        "answer": None,
        "reference_ids": [7, 8, 9, EOS],
    }
    row.update(extra)
    return row


def _write(path: Path, rows: list[dict[str, Any]], header: dict[str, Any] | None = None) -> Path:
    lines = [json.dumps(header or HEADER), *(json.dumps(r) for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_an_old_file_loads_with_every_reasoning_field_none_and_its_digest_unchanged() -> None:
    ds = resolve_dataset("embedded")
    assert ds.datasets == ds.ground_truths == ds.reference_reasoning == ds.tests == [None] * len(ds)
    assert not ds.has_reasoning
    # The packaged recordings name the dataset by digest: it must not move for a set without the fields.
    meta = json.loads(bytes(np.load(ROOT / "scenarios/data/recordings/fp32.npz")["meta"]).decode())
    assert meta["dataset_sha256"] == ds.digest()


def test_reasoning_fields_round_trip_through_a_file(tmp_path: Path) -> None:
    tests: dict[str, Any] = {"inputs": ["1\n"], "outputs": ["2\n"], "fn_name": None}
    rows = [
        _row(0, dataset="gpqa_diamond", ground_truth="C", reference_reasoning_tokens=2),
        _row(1, category="aime", dataset="aime25", ground_truth="204", reference_reasoning_tokens=0),
        _row(2, category="livecodebench", dataset="livecodebench", ground_truth="lcb_1", tests=tests),
        _row(3, category="qa"),  # a sample without them, in the same file
    ]
    ds = load_dataset(_write(tmp_path / "r.jsonl", rows))
    assert ds.datasets == ["gpqa_diamond", "aime25", "livecodebench", None]
    assert ds.ground_truths == ["C", "204", "lcb_1", None]
    assert ds.reference_reasoning == [2, 0, None, None]
    assert ds.tests[2] == CodeTests(**tests) and ds.tests[0] is None
    assert ds.has_reasoning
    again = load_dataset(save_dataset(ds, tmp_path / "again.jsonl.gz"))
    assert again.digest() == ds.digest()
    assert (again.datasets, again.ground_truths, again.reference_reasoning, again.tests) == (
        ds.datasets,
        ds.ground_truths,
        ds.reference_reasoning,
        ds.tests,
    )
    # The fields are part of what the set is: another ground truth is another digest.
    other = [*rows[:1], dict(rows[1], ground_truth="205"), *rows[2:]]
    assert load_dataset(_write(tmp_path / "o.jsonl", other)).digest() != ds.digest()
    # A sample without the fields is written without them (old readers see an old line).
    with gzip.open(tmp_path / "again.jsonl.gz", "rt") as fh:
        last = json.loads(fh.read().splitlines()[-1])
    assert set(last) == {"index", "category", "prompt", "input_ids", "target", "answer", "reference_ids"}


BAD_LINES = [
    (dict(dataset="aime", ground_truth=204), "field 'ground_truth': Input should be a valid string"),
    (dict(dataset="gpqa", ground_truth="E"), "field 'ground_truth': expected one letter A-D for dataset 'gpqa'"),
    (dict(dataset="mmlu_pro", ground_truth="K"), "expected one letter A-J for dataset 'mmlu_pro', got 'K'"),
    (dict(dataset="aime25", ground_truth="1000"), "expected an integer 0-999 for dataset 'aime25'"),
    (dict(dataset="aime", ground_truth="12.5"), "expected an integer 0-999"),
    (dict(dataset="math500", ground_truth=" "), "expected a non-empty string for dataset 'math500'"),
    (dict(ground_truth="C"), "field 'dataset': required with 'ground_truth'"),
    (dict(dataset=""), "field 'dataset': String should have at least 1 character"),
    (dict(reference_reasoning_tokens=4), "field 'reference_reasoning_tokens': expected fewer than the 4"),
    (dict(reference_reasoning_tokens=-1), "field 'reference_reasoning_tokens': Input should be greater than"),
    (dict(reference_reasoning_tokens=True), "field 'reference_reasoning_tokens': Input should be a valid integer"),
    (dict(tests={"inputs": ["1"], "outputs": []}), "field 'tests.outputs': List should have at least 1 item"),
    (dict(tests={"inputs": ["1", "2"], "outputs": ["1"]}), "field 'tests.outputs': expected one output per input"),
    (dict(tests={"inputs": [1], "outputs": ["1"]}), "field 'tests.inputs.0': Input should be a valid string"),
    (dict(tests={"inputs": ["1"], "outputs": ["1"], "fn": "f"}), "field 'tests.fn': Extra inputs"),
    (dict(ground_trut="C"), "field 'ground_trut': Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_LINES)
def test_a_bad_reasoning_field_is_one_line_naming_file_line_and_field(
    tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    path = _write(tmp_path / "bad.jsonl", [_row(0), _row(1, **extra)])
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    text = str(err.value)
    assert text.startswith(f"{path}:3: ") and message in text and "\n" not in text


def test_routing_and_ground_truth_rules_follow_the_reference_evaluators() -> None:
    # First substring in the references' order: mmlu_pro before any plain "mmlu", gpqa_diamond is gpqa.
    assert [routed_dataset(n) for n in ("GPQA_diamond", "mmlu_pro", "math500", "aime25", "livecodebench_v6")] == [
        "gpqa",
        "mmlu_pro",
        "math500",
        "aime",
        "livecodebench",
    ]
    assert routed_dataset("mmlu") is None and check_ground_truth("mmlu", "anything") is None
    assert check_ground_truth("gpqa", "c") is None  # graded case-insensitively
    assert check_ground_truth("aime", "007") is None


def test_a_bad_ground_truth_from_the_command_line_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [_row(0, dataset="gpqa", ground_truth=3)])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "sut", "serve", "--port", "0", "--dataset", str(path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"{path}:2: field 'ground_truth'" in lines[0]


def test_special_tokens_decode_only_when_asked_and_survive_a_file(tmp_path: Path) -> None:
    pieces = {10: b"Hi", 11: b" there", 12: b"</think>"}
    dec = ByteDecoder(pieces, {0: "<|return|>", 1: "<|channel|>"})
    ids = [1, 10, 12, 11, 0]
    assert dec.decode(ids) == "Hi</think> there"  # skip_special_tokens=True: markers gone, </think> is a piece
    assert dec.decode(ids, skip_special_tokens=False) == "<|channel|>Hi</think> there<|return|>"
    assert dec.token_id("<|channel|>") == 1 and dec.token_id("</think>") == 12 and dec.token_id("nope") is None
    ds = Dataset("s", 0, ["c"], ["p"], ["t"], [None], [np.array([10], np.int32)], [np.array(ids, np.int32)])
    ds.decoder = dec
    again = load_dataset(save_dataset(ds, tmp_path / "s.jsonl"))
    assert again.decode(ids, skip_special_tokens=False) == "<|channel|>Hi</think> there<|return|>"
    assert again.decoder is not None and again.decoder.special == {0: "<|return|>", 1: "<|channel|>"}


@pytest.mark.parametrize(
    ("decoder", "message"),
    [
        ({"kind": "byte_pieces", "pieces": {"1": "41"}, "special": {"1": "<|end|>"}}, "id 1 is also a byte piece"),
        ({"kind": "byte_pieces", "pieces": {}, "special": {"x": "<|end|>"}}, "field 'decoder.special'"),
        ({"kind": "byte_pieces", "pieces": {}, "special": {"2": 5}}, "field 'decoder.special'"),
        ({"kind": "byte_pieces", "pieces": {}, "specials": {}}, "field 'decoder.specials': unknown"),
    ],
)
def test_a_bad_special_map_is_one_line(tmp_path: Path, decoder: dict[str, Any], message: str) -> None:
    path = _write(tmp_path / "d.jsonl", [_row(0)], header={**HEADER, "decoder": decoder})
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(path)
    assert str(err.value).startswith(f"{path}:1: ")


def test_resolve_dataset_reads_mlperf_tables_and_a_pickle_only_when_allowed(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    table = {"tok_input": [[1, 2, 3], [4, 5]], "dataset": ["gpqa_diamond", "aime25"], "ground_truth": ["B", "12"]}
    pq.write_table(pa.table(table), tmp_path / "acc.parquet")
    ds = resolve_dataset(tmp_path / "acc.parquet")
    assert ds.datasets == ["gpqa_diamond", "aime25"] and ds.ground_truths == ["B", "12"]
    (tmp_path / "t.pkl").write_bytes(b"not read")
    with pytest.raises(DatasetError, match="pickle"):
        resolve_dataset(tmp_path / "t.pkl")
