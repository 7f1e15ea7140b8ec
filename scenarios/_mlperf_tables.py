"""MLPerf's dataset tables for the reasoning benchmarks, read into a :class:`scenarios.Dataset`.

MLPerf ships deepseek-r1's and gpt-oss-120b's sets as pandas tables: a pickled DataFrame
(``mlperf_deepseek_r1_dataset_4388_fp8_eval.pkl``) or parquet (``acc_eval_inputs.parquet``, ...). The
columns this reader takes, with the references' precedence:

* prompt ids: ``tok_input``, else ``input_tokens`` (the gpt-oss SUT's); absent, the ids are empty (the
  deepseek-r1 reference tokenizes ``text_input`` itself): such a set scores accuracy logs but cannot
  drive a run;
* prompt text: ``text_input``, else ``question``, else ``input``;
* sub-dataset: ``dataset``, else derived from ``metric`` as deepseek-r1's evaluator derives it (``_em``
  removed, then every ``_``);
* ground truth: ``gt_output``, else ``ground_truth`` (deepseek-r1's order; gpt-oss-120b's tables have only
  the latter). Cells become strings: integers (and integral floats, as in AIME tables) as integers,
  NaN/None as missing;
* code tests (lpuperf's addition; MLPerf fetches them from the Hugging Face hub): ``tests``, a dict or
  JSON ``{"inputs", "outputs", "fn_name"}``, or LiveCodeBench's ``input_output`` JSON.

Parquet needs pyarrow (the ``parquet`` extra), never pandas. A pickle is code: it is loaded only when the
caller allows it (``--allow-pickle``) and must hold a DataFrame, a list of records or a dict of columns.
Tables carry no decoder, so scoring their logs needs ``--tokenizer``.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from scenarios.dataset import CodeTests, Dataset, DatasetError

TABLE_SUFFIXES = (".pkl", ".pickle", ".parquet")
_TOKEN_COLUMNS = ("tok_input", "input_tokens")
_TEXT_COLUMNS = ("text_input", "question", "input")
_TRUTH_COLUMNS = ("gt_output", "ground_truth")
_TEST_COLUMNS = ("tests", "input_output")

Columns = dict[str, list[Any]]


def is_mlperf_table(spec: str | Path) -> bool:
    """Whether a dataset spec names one of MLPerf's tables (by its suffix)."""
    return Path(str(spec)).suffix.lower() in TABLE_SUFFIXES


def read_mlperf_table(path: str | Path, *, allow_pickle: bool = False) -> Dataset:
    """Load a ``.parquet`` / ``.pkl`` / ``.pickle`` table; DatasetError (one line) on anything unusable."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: dataset file not found")
    columns = _read_parquet(p) if p.suffix.lower() == ".parquet" else _read_pickle(p, allow_pickle)
    return table_to_dataset(columns, name=p.stem, source=str(p))


def _read_parquet(p: Path) -> Columns:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{p}: reading parquet needs pyarrow (pip install 'lpuperf[parquet]')") from None
    try:
        table = pq.read_table(p)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DatasetError(f"{p}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _read_pickle(p: Path, allow: bool) -> Columns:
    if not allow:
        raise DatasetError(
            f"{p}: loading a pickle runs code from the file; pass --allow-pickle only for a file you trust "
            "(or convert it to parquet)"
        )
    try:
        with open(p, "rb") as fh:
            obj = pickle.load(fh)
    except ModuleNotFoundError as exc:
        raise DatasetError(
            f"{p}: the pickle needs module '{exc.name}' (a pickled DataFrame needs pandas: pip install pandas)"
        ) from None
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, IndexError) as exc:
        raise DatasetError(f"{p}: not a readable pickle ({exc.__class__.__name__})") from None
    return _columns_of(obj, p)


def _columns_of(obj: object, p: Path) -> Columns:
    kind = type(obj)
    if kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas"):
        frame: Any = obj
        try:
            return {str(c): list(frame[c].tolist()) for c in frame.columns}
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a truncated or hand-made frame
            raise DatasetError(f"{p}: a pandas DataFrame that cannot be read ({exc.__class__.__name__})") from None
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        names = list(dict.fromkeys(k for r in obj for k in r))
        return {str(k): [r.get(k) for r in obj] for k in names}
    if isinstance(obj, dict) and obj and all(isinstance(v, (list, tuple)) for v in obj.values()):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) == 1:
            return {str(k): list(v) for k, v in obj.items()}
    raise DatasetError(
        f"{p}: expected a pandas DataFrame, a list of records or a dict of equal-length columns, "
        f"got {kind.__module__}.{kind.__name__}"
    )


# ---- cells -----------------------------------------------------------------------------------------


def _plain(cell: Any) -> Any:
    """numpy arrays and scalars as Python values; NaN and pandas' NA as None."""
    if cell is None:
        return None
    if type(cell).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(cell, np.ndarray):
        return cell.tolist()
    if isinstance(cell, np.generic):
        cell = cell.item()
    if isinstance(cell, float) and math.isnan(cell):
        return None
    return cell


def _text(cell: Any) -> str | None:
    value = _plain(cell)
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _ids(cell: Any, where: str) -> np.ndarray:
    value = _plain(cell)
    if value is None:
        raise DatasetError(f"{where}: expected token ids, got nothing")
    try:
        arr = np.asarray([int(x) for x in value], dtype=np.int64)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: expected a list of integer token ids") from None
    if arr.size == 0 or arr.min() < 0 or arr.max() > 2**31 - 1:
        raise DatasetError(f"{where}: expected a non-empty list of int32 token ids >= 0")
    return arr.astype(np.int32)


def _tests(cell: Any, where: str) -> CodeTests | None:
    value = _plain(cell)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DatasetError(f"{where}: expected JSON test cases") from None
    if not isinstance(value, Mapping):
        raise DatasetError(f"{where}: expected {{'inputs': [...], 'outputs': [...], 'fn_name': ...}}")
    raw = {"inputs": value.get("inputs"), "outputs": value.get("outputs"), "fn_name": value.get("fn_name")}
    try:
        tests = CodeTests.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err.get("loc", ()))
        raise DatasetError(f"{where}.{field}: {err.get('msg', 'invalid')}") from None
    if len(tests.inputs) != len(tests.outputs):
        raise DatasetError(f"{where}: expected one output per input")
    return tests


def _first(columns: Columns, names: Sequence[str]) -> str | None:
    return next((c for c in names if c in columns), None)


def _dataset_names(columns: Columns, n: int) -> list[str | None]:
    if "dataset" in columns:
        return [_text(x) or None for x in columns["dataset"]]
    if "metric" in columns:  # deepseek-r1's evaluator: "gpqa_em" -> "gpqa", "mmlu_pro_em" -> "mmlupro"
        return [None if (m := _text(x)) is None else m.replace("_em", "").replace("_", "") for x in columns["metric"]]
    return [None] * n


def table_to_dataset(columns: Columns, name: str, source: str = "") -> Dataset:
    """The table's columns (name -> one value per row) as a Dataset with the reasoning fields set."""
    where = source or name
    lengths = {len(v) for v in columns.values()}
    if not columns or lengths == {0}:
        raise DatasetError(f"{where}: the table has no rows")
    if len(lengths) != 1:
        raise DatasetError(f"{where}: the table's columns have different lengths")
    n = lengths.pop()
    tok_col, text_col = _first(columns, _TOKEN_COLUMNS), _first(columns, _TEXT_COLUMNS)
    truth_col = _first(columns, _TRUTH_COLUMNS)
    test_col = _first(columns, _TEST_COLUMNS)
    if truth_col is None:
        raise DatasetError(f"{where}: expected a ground truth column ('gt_output' or 'ground_truth')")
    datasets = _dataset_names(columns, n)
    truths = [_text(x) for x in columns[truth_col]]
    empty = np.zeros(0, dtype=np.int32)
    inputs = (
        [_ids(x, f"{where}: row {i}: column '{tok_col}'") for i, x in enumerate(columns[tok_col])]
        if tok_col is not None
        else [empty] * n
    )
    texts = [_text(x) or "" for x in columns[text_col]] if text_col is not None else [""] * n
    tests: list[CodeTests | None] = (
        [_tests(x, f"{where}: row {i}: column '{test_col}'") for i, x in enumerate(columns[test_col])]
        if test_col is not None
        else [None] * n
    )
    return Dataset(
        name=name,
        eos_token_id=0,  # a table names no EOS; nothing that reads a table uses it
        categories=[d or "unknown" for d in datasets],
        prompts=texts,
        targets=[t or "" for t in truths],
        answers=[None] * n,
        input_ids=inputs,
        reference_ids=[empty] * n,
        tokenizer="" if tok_col is not None else "none: the table has no prompt token ids (tok_input/input_tokens)",
        decoder=None,
        source=source,
        datasets=datasets,
        ground_truths=truths,
        tests=tests,
    )
