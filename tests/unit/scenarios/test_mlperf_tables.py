"""MLPerf's dataset tables (parquet, pickles) read into a Dataset with the reasoning fields."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from accuracy import AccuracyLogError, evaluate_log, read_accuracy_log, score_accuracy_log  # noqa: E402
from scenarios import DatasetError  # noqa: E402
from scenarios._mlperf_tables import is_mlperf_table, read_mlperf_table, table_to_dataset  # noqa: E402


def _parquet(path: Path, columns: dict[str, list[object]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


GPT_OSS_COLUMNS: dict[str, list[object]] = {
    "dataset": ["aime25", "gpqa_diamond", "livecodebench_v6"],
    "ground_truth": ["204", "B", "lcb-1"],
    "question": ["q0", "q1", "q2"],
    "tok_input": [[1, 2, 3], [4, 5], [6]],
    "tests": [None, None, json.dumps({"inputs": ["2\n"], "outputs": ["4"], "fn_name": None})],
}


def test_parquet_with_gpt_oss_columns(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "acc_eval_inputs.parquet", GPT_OSS_COLUMNS)
    assert is_mlperf_table(path) and not is_mlperf_table("set.jsonl")
    ds = read_mlperf_table(path)
    assert ds.name == "acc_eval_inputs" and len(ds) == 3
    assert ds.datasets == ["aime25", "gpqa_diamond", "livecodebench_v6"]
    assert ds.ground_truths == ["204", "B", "lcb-1"]
    assert ds.prompts == ["q0", "q1", "q2"] and ds.categories == ds.datasets
    assert [a.tolist() for a in ds.input_ids] == [[1, 2, 3], [4, 5], [6]] and ds.input_ids[0].dtype == np.int32
    assert ds.tests[0] is None and ds.tests[2] is not None and ds.tests[2].outputs == ["4"]
    assert ds.decoder is None


def test_cells_read_as_the_references_compare_them() -> None:
    # AIME truths stored as numbers read as integers; NaN is a missing truth; numpy arrays are lists.
    ds = table_to_dataset(
        {
            "dataset": ["aime"] * 4,
            "ground_truth": [204.0, float("nan"), np.int32(7), 0.5],
            "tok_input": [np.arange(2)] * 4,
        },
        name="cells",
    )
    assert ds.ground_truths == ["204", None, "7", "0.5"]
    assert ds.input_ids[0].tolist() == [0, 1]


def test_deepseek_columns_take_the_reference_precedence(tmp_path: Path) -> None:
    path = _parquet(
        tmp_path / "r1.parquet",
        {
            "text_input": ["<prompt 0>", "<prompt 1>"],
            "question": ["q0", "q1"],
            "metric": ["gpqa_em", "mmlu_pro_em"],  # no 'dataset' column: derived as eval_accuracy.py derives it
            "gt_output": ["C", None],
            "ground_truth": ["X", "Y"],  # gt_output wins where the column exists, NaN included
        },
    )
    ds = read_mlperf_table(path)
    assert ds.datasets == ["gpqa", "mmlupro"]
    assert ds.ground_truths == ["C", None] and ds.targets == ["C", ""]
    assert ds.prompts == ["<prompt 0>", "<prompt 1>"]
    assert [len(a) for a in ds.input_ids] == [0, 0] and "no prompt token ids" in ds.tokenizer


def test_bad_tables_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="expected a ground truth column"):
        read_mlperf_table(_parquet(tmp_path / "a.parquet", {"dataset": ["gpqa"], "tok_input": [[1]]}))
    with pytest.raises(DatasetError, match=r"row 1: column 'input_tokens': expected a non-empty list of int32"):
        read_mlperf_table(_parquet(tmp_path / "b.parquet", {"ground_truth": ["A", "B"], "input_tokens": [[1], [-5]]}))
    with pytest.raises(DatasetError, match=r"row 0: column 'tests'.outputs"):
        read_mlperf_table(_parquet(tmp_path / "c.parquet", {"ground_truth": ["x"], "tests": ['{"inputs": ["1"]}']}))
    with pytest.raises(DatasetError, match="not a readable parquet file"):
        (tmp_path / "d.parquet").write_text("not parquet")
        read_mlperf_table(tmp_path / "d.parquet")
    with pytest.raises(DatasetError, match="dataset file not found"):
        read_mlperf_table(tmp_path / "missing.parquet")


def test_parquet_without_pyarrow_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _parquet(tmp_path / "t.parquet", GPT_OSS_COLUMNS)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DatasetError, match=r"needs pyarrow \(pip install 'lpuperf\[parquet\]'\)"):
        read_mlperf_table(path)


def test_pickles_load_only_when_allowed(tmp_path: Path) -> None:
    records = [{"dataset": "gpqa", "ground_truth": "A", "tok_input": np.asarray([1, 2])}]
    path = tmp_path / "set.pkl"
    path.write_bytes(pickle.dumps(records))
    with pytest.raises(DatasetError, match="loading a pickle runs code from the file; pass --allow-pickle"):
        read_mlperf_table(path)
    ds = read_mlperf_table(path, allow_pickle=True)
    assert ds.ground_truths == ["A"] and ds.input_ids[0].tolist() == [1, 2]
    columns = tmp_path / "columns.pickle"
    columns.write_bytes(pickle.dumps({"dataset": ["aime"], "gt_output": [np.int64(7)]}))
    assert read_mlperf_table(columns, allow_pickle=True).ground_truths == ["7"]
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps(42))
    with pytest.raises(DatasetError, match=r"expected a pandas DataFrame, a list of records .* got builtins.int"):
        read_mlperf_table(other, allow_pickle=True)


def test_a_pickled_dataframe_without_pandas_names_it(tmp_path: Path) -> None:
    path = tmp_path / "frame.pkl"
    # GLOBAL pandas.core.frame.DataFrame, EMPTY_TUPLE, NEWOBJ, STOP: what a DataFrame pickle needs first.
    path.write_bytes(b"\x80\x02cpandas.core.frame\nDataFrame\n)\x81.")
    with pytest.raises(DatasetError, match=r"pandas|no rows"):
        read_mlperf_table(path, allow_pickle=True)


def test_a_tables_log_scores_with_the_reference_evaluator(tmp_path: Path) -> None:
    ds = table_to_dataset(
        {
            "dataset": ["aime25", "aime25", "gpqa_diamond"],
            "ground_truth": ["204", "204", "C"],
            "input_tokens": [[1], [1], [2]],
        },
        name="t",
    )
    texts = {1: "\\boxed{204}", 2: "\\boxed{5}", 3: "<|channel|>final<|message|>C<|return|>"}
    log_path = tmp_path / "mlperf_log_accuracy.json"
    rows = [{"seq_id": i, "qsl_idx": i, "data": np.asarray([i + 1], "<i4").tobytes().hex()} for i in range(3)]
    log_path.write_text(json.dumps(rows))
    report, _ = evaluate_log(
        read_accuracy_log(log_path, dedupe=False),
        ds.targets,
        lambda ids: texts[int(ids[0])],
        scorer={"kind": "exact_match-gpt-oss-120b"},
        datasets=ds.datasets,
        ground_truths=ds.ground_truths,
        tests=ds.tests,
    )
    assert (report.per_dataset["aime25"].correct, report.per_dataset["gpqa_diamond"].correct) == (1, 1)
    assert report.scores_percent["exact_match"] == round((1 / 8 + 1 / 5) / (2 / 8 + 1 / 5) * 100, 3)
    # The pipeline takes the table as the dataset spec; a table has no decoder, so it asks for a tokenizer.
    path = _parquet(tmp_path / "t.parquet", GPT_OSS_COLUMNS)
    with pytest.raises(AccuracyLogError, match=r"t.parquet': has no decoder; pass --tokenizer DIR"):
        score_accuracy_log(log_path, dataset_spec=str(path), benchmark="gpt-oss-120b", fidelity=False)
