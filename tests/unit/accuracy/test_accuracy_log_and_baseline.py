"""Accuracy-log decoding (int32/int64, duplicates, bad input) and the shipped baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from accuracy import (
    BASELINES_DIR,
    AccuracyLogError,
    compute_reference_baseline,
    load_baseline,
    read_accuracy_log,
    write_accuracy_log,
)
from scenarios import resolve_dataset


def _entry(idx: int, ids: list[int], dtype: str) -> dict[str, object]:
    return {"seq_id": idx, "qsl_idx": idx, "data": np.asarray(ids, dtype=dtype).tobytes().hex().upper()}


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_decodes_both_dtypes_and_keeps_first_entry_per_qsl_idx(tmp_path: Path, dtype: str) -> None:
    big = 2**31 - 5 if dtype == "int32" else 2**40
    dt = "<i4" if dtype == "int32" else "<i8"
    rows = [_entry(3, [5, 6, big], dt), _entry(0, [7], dt)]
    rows.append(_entry(3, [9, 9], dt))  # duplicate qsl_idx: MLPerf keeps the first
    p = tmp_path / "mlperf_log_accuracy.json"
    p.write_text(json.dumps(rows))
    log = read_accuracy_log(p, dtype)  # type: ignore[arg-type]
    assert log.qsl_indices == [3, 0] and log.n_entries == 3
    assert log.outputs[0].tolist() == [5, 6, big] and log.outputs[1].tolist() == [7]


def test_wrong_dtype_and_bad_entries_give_one_clear_line(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text(json.dumps([_entry(0, [1, 2, 3], "<i4")]))
    with pytest.raises(AccuracyLogError, match=r"12 bytes is not a whole number of int64"):
        read_accuracy_log(p, "int64")
    p.write_text(json.dumps([{"qsl_idx": "x", "data": ""}]))
    with pytest.raises(AccuracyLogError, match=r"entry 0: field 'qsl_idx'"):
        read_accuracy_log(p)
    p.write_text(json.dumps([{"qsl_idx": 0, "data": "zz"}]))
    with pytest.raises(AccuracyLogError, match=r"field 'data': not valid hex"):
        read_accuracy_log(p)
    p.write_text("{not json")
    with pytest.raises(AccuracyLogError, match="cannot read the accuracy log"):
        read_accuracy_log(p)


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    outs = [np.array([1, 2, 3]), np.array([], dtype=np.int32), np.array([2**31 - 1])]
    log = read_accuracy_log(write_accuracy_log(tmp_path / "x.json", outs))
    assert [o.tolist() for o in log.outputs] == [[1, 2, 3], [], [2**31 - 1]]


def test_shipped_embedded_baseline_matches_the_shipped_dataset() -> None:
    shipped = load_baseline("embedded")
    dataset = resolve_dataset("embedded")
    fresh, _ = compute_reference_baseline(dataset, benchmark="embedded")
    assert shipped.dataset_sha256 == dataset.digest(), "regenerate: lpuperf accuracy --write-baseline"
    assert shipped.metrics == fresh.metrics
    assert shipped.tokens_per_sample == fresh.tokens_per_sample


def test_published_baselines_ship_with_mlperf_values() -> None:
    names = {p.stem for p in BASELINES_DIR.glob("*.json")}
    assert {"llama2-70b", "llama3_1-8b", "llama3_1-405b", "mixtral-8x7b", "embedded"} <= names
    llama2 = load_baseline("llama2-70b")
    assert llama2.metrics["rougeL"] == 28.6162 and llama2.tokens_per_sample == 294.45
    assert llama2.tokens_per_sample_tolerance == 0.1
    assert load_baseline("llama3_1-8b").metrics["rougeLsum"] == 35.793
    with pytest.raises(AccuracyLogError, match="no such shipped baseline"):
        load_baseline("gpt-17")


def test_bad_baseline_file_names_the_field(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"benchmark": "x", "source": "s", "metrics": {"rougeL": "high"}}))
    with pytest.raises(AccuracyLogError, match=r"field 'metrics.rougeL'"):
        load_baseline(p)
