"""The exact-match scorers end to end: accuracy log -> decode -> route -> grade -> aggregate -> accuracy.txt.

Small datasets in lpuperf's format are written per test (a byte tokenizer with harmony's markers as
special tokens); the log is LoadGen's JSON. accuracy.txt is read back with the v6.1 submission checker's
own patterns (tools/submission/submission_checker/constants.py ACC_PATTERN).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from accuracy import AccuracyLogError, format_accuracy_txt, score_accuracy_log
from scenarios import ByteDecoder, Dataset, save_dataset

# The checker's patterns: a line matching one is judged, a "hash=" line must exist.
CHECKER = {
    "exact_match": re.compile(r".*'exact_match':\s([\d.]+).*"),
    "tokens_per_sample": re.compile(r".*'tokens_per_sample':\s([\d.]+).*"),
}
HASH = re.compile(r"^hash=([\w\d]+)$")
SPECIAL = {1000: "<|channel|>", 1001: "<|message|>", 1002: "<|end|>", 1003: "<|start|>", 1004: "<|return|>"}
R1_EOS, OSS_EOS = 1005, 1004
_BY_TEXT = {v: k for k, v in SPECIAL.items()}
_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL.values()) + ")")


def encode(text: str) -> list[int]:
    ids: list[int] = []
    for part in _SPLIT.split(text):
        ids += [_BY_TEXT[part]] if part in _BY_TEXT else list(part.encode())
    return ids


def harmony(analysis: str, final: str | None) -> str:
    head = f"<|channel|>analysis<|message|>{analysis}<|end|>"
    return head if final is None else head + f"<|start|>assistant<|channel|>final<|message|>{final}"


def write_set(
    tmp: Path, rows: list[tuple[str, str | None, str]], eos: int, tests: dict[int, dict] | None = None
) -> Path:
    """rows: (dataset, ground truth, the FP32 reference answer text); returns the dataset file."""
    from scenarios.dataset import CodeTests

    n = len(rows)
    decoder = ByteDecoder({i: bytes([i]) for i in range(256)}, {**SPECIAL, R1_EOS: "<eos>"})
    ds = Dataset(
        name="exact-match-test",
        eos_token_id=eos,
        categories=[r[0] for r in rows],
        prompts=[f"question {i}" for i in range(n)],
        targets=[r[1] or "" for r in rows],
        answers=[None] * n,
        input_ids=[np.asarray([1, 2, 3], dtype=np.int32)] * n,
        reference_ids=[np.asarray([*encode(r[2]), eos], dtype=np.int32) for r in rows],
        decoder=decoder,
        datasets=[r[0] for r in rows],
        ground_truths=[r[1] for r in rows],
        tests=[CodeTests.model_validate(tests[i]) if tests and i in tests else None for i in range(n)],
    )
    return save_dataset(ds, tmp / "set.jsonl")


def write_log(tmp: Path, outputs: list[tuple[int, list[int]]]) -> Path:
    """LoadGen's accuracy log: (qsl_idx, int32 ids) per entry, in order."""
    rows = [
        {"seq_id": k, "qsl_idx": idx, "data": np.asarray(ids, dtype="<i4").tobytes().hex().upper()}
        for k, (idx, ids) in enumerate(outputs)
    ]
    path = tmp / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(rows))
    return path


def checker_reads(text: str) -> dict[str, list[float]]:
    """Every value the v6.1 checker parses from accuracy.txt, per metric, and the hash."""
    seen: dict[str, list[float]] = {k: [] for k in CHECKER}
    for line in text.splitlines(keepends=True):
        for name, pattern in CHECKER.items():
            m = pattern.match(line)
            if m:
                seen[name].append(float(m.group(1)))
    assert any(HASH.match(line) for line in text.splitlines(keepends=True)), "no hash= line"
    return seen


THINK = "The options mention A first, and Answer: A looks tempting, but no.</think>\n\n"
R1_ROWS = [
    ("gpqa_diamond", "C", THINK + "Answer: (C)"),
    # MMLU-Pro's last-letter fallback (an "Answer: A" in the reasoning would win over it: the last ANSWER pattern)
    ("mmlu_pro", "J", "Options A to I fail.</think>\n\nThe answer is **J**"),
    ("math500", "\\frac{1}{2}", THINK + "So \\boxed{1} is wrong; the answer is \\boxed{\\dfrac{1}{2}}."),
    ("aime", "204", THINK + "\\boxed{204}"),
    ("livecodebench", "lcb-1", THINK + "```python\nprint(int(input()) * 2)\n```"),
]
LCB_TESTS = {4: {"inputs": ["2\n", "5\n"], "outputs": ["4", "10"], "fn_name": None}}


def _score(tmp: Path, bench: str, outputs: list[tuple[int, list[int]]], **kw: object) -> object:
    return score_accuracy_log(
        write_log(tmp, outputs), dataset_spec=str(tmp / "set.jsonl"), benchmark=bench, fidelity=False, **kw
    )


def test_deepseek_r1_scores_the_reference_way_and_writes_the_checker_line(tmp_path: Path) -> None:
    write_set(tmp_path, R1_ROWS, R1_EOS, LCB_TESTS)
    outputs = [(i, [*encode(r[2]), R1_EOS]) for i, r in enumerate(R1_ROWS)]
    out = _score(tmp_path, "deepseek-r1", outputs, out_dir=tmp_path)
    rep = out.report
    assert rep.scorer == "exact_match-deepseek-r1"
    assert {k: (d.correct, d.total, d.not_scored) for k, d in rep.per_dataset.items()} == {
        "aime": (1, 1, 0),
        "gpqa_diamond": (1, 1, 0),
        "livecodebench": (0, 0, 1),
        "math500": (1, 1, 0),
        "mmlu_pro": (1, 1, 0),
    }
    assert rep.scores_percent == {"exact_match": 100.0}
    assert rep.not_scored == {"livecodebench": 1}
    # TOKENS_PER_SAMPLE: the int32 values of every logged output, reasoning and EOS included.
    assert rep.tokens_per_sample == sum(len(ids) for _, ids in outputs) / 5 and rep.gen_num == 5
    assert math.isnan(out.samples.rougeL[4]) and out.samples.rougeL[:4] == [100.0] * 4
    text = (tmp_path / "accuracy.txt").read_text()
    assert text == format_accuracy_txt(rep)
    last = text.splitlines()[-2]
    assert last == repr({"exact_match": 100.0, "tokens_per_sample": rep.tokens_per_sample, "num-samples": 5})
    assert checker_reads(text) == {"exact_match": [100.0], "tokens_per_sample": [rep.tokens_per_sample]}
    assert "not scored: 1 livecodebench samples (code not executed" in out.notes[0]
    assert "exact_match covers 4 of 5 samples" in out.notes[-1]


def test_deepseek_r1_mean_is_pandas_exact_and_dedupes_first_entry(tmp_path: Path) -> None:
    rows = [("gpqa", "A", "Answer: A"), ("gpqa", "B", "Answer: B"), ("gpqa", "C", "Answer: C")]
    write_set(tmp_path, rows, R1_EOS)
    wrong = [*encode("Answer: D"), R1_EOS]
    outputs = [(0, [*encode("Answer: A"), R1_EOS]), (1, wrong), (2, wrong), (1, [*encode("Answer: B"), R1_EOS])]
    rep = _score(tmp_path, "deepseek-r1", outputs).report
    # The second entry for qsl_idx 1 is dropped (first wins): 1 of 3, the float pandas' mean prints.
    assert rep.scores_percent["exact_match"] == 33.333333333333336 and rep.gen_num == 3
    assert rep.duplicates_dropped == 1
    assert "{'exact_match': 33.333333333333336, " in format_accuracy_txt(rep)


def test_deepseek_r1_fails_on_a_planted_wrong_category(tmp_path: Path) -> None:
    write_set(tmp_path, R1_ROWS[:4], R1_EOS)
    planted = {2: THINK + "\\boxed{\\frac{1}{3}}"}  # the SUT answers math500 wrong
    outputs = [(i, [*encode(planted.get(i, r[2])), R1_EOS]) for i, r in enumerate(R1_ROWS[:4])]
    out = _score(tmp_path, "deepseek-r1", outputs, baseline=str(_baseline(tmp_path, 81.3582)))
    assert out.report.per_dataset["math500"].exact_match_percent == 0.0
    assert out.report.scores_percent["exact_match"] == 75.0
    assert not out.verdicts[0].passed
    assert "exact_match 75 < 80.5446 target" in out.verdicts[0].lines[0].line


def _baseline(tmp: Path, exact_match: float) -> Path:
    path = tmp / "baseline.json"
    path.write_text(json.dumps({"benchmark": "t", "source": "test", "metrics": {"exact_match": exact_match}}))
    return path


def _oss_rows() -> list[tuple[str, str | None, str]]:
    # aime25 repeats each question 8 times, gpqa_diamond 5 times (DATASET_REPEATS).
    aime = [("aime25", "204", harmony("maybe \\boxed{7}", "\\boxed{204}"))] * 8
    gpqa = [("gpqa_diamond", "B", harmony("Answer: A is a trap", "**B**"))] * 5
    return aime + gpqa


def test_gpt_oss_weighs_each_dataset_by_its_repeats_and_keeps_every_entry(tmp_path: Path) -> None:
    rows = _oss_rows()
    write_set(tmp_path, rows, OSS_EOS)
    wrong = [*encode(harmony("hmm", "\\boxed{205}")), OSS_EOS]
    outputs = [(i, wrong if i < 4 else [*encode(r[2]), OSS_EOS]) for i, r in enumerate(rows)]
    outputs.append((12, [*encode(rows[12][2]), OSS_EOS]))  # a repeated entry counts again (no de-duplication)
    out = _score(tmp_path, "gpt-oss-120b", outputs, out_dir=tmp_path)
    rep = out.report
    assert (rep.per_dataset["aime25"].correct, rep.per_dataset["aime25"].total) == (4, 8)
    assert (rep.per_dataset["gpqa_diamond"].correct, rep.per_dataset["gpqa_diamond"].total) == (6, 6)
    # (4/8 + 6/5) / (8/8 + 6/5) = 77.27..%, not the raw 10/14 = 71.4 %.
    assert rep.scores_percent["exact_match"] == 77.273
    assert rep.per_dataset["gpqa_diamond"].repeats == 5 and rep.duplicates_dropped == 0
    text = (tmp_path / "accuracy.txt").read_text()
    assert "'exact_match': 77.273\n" in text
    assert checker_reads(text) == {"exact_match": [77.273], "tokens_per_sample": []}


def test_gpt_oss_reads_the_final_channel_with_special_tokens_kept(tmp_path: Path) -> None:
    rows = [("gpqa_diamond", "B", harmony("Answer: A", "B")), ("gpqa_diamond", "C", harmony("Answer: C", None))]
    write_set(tmp_path, rows, OSS_EOS)
    outputs = [(i, [*encode(r[2]), OSS_EOS]) for i, r in enumerate(rows)]
    rep = _score(tmp_path, "gpt-oss-120b", outputs).report
    # final "B" is right although the analysis says A; without a final channel the whole text's ANSWER counts
    assert rep.per_dataset["gpqa_diamond"].correct == 2
    assert "special tokens kept" in rep.decoder


def test_gpt_oss_fails_on_a_planted_wrong_final_answer(tmp_path: Path) -> None:
    rows = _oss_rows()
    write_set(tmp_path, rows, OSS_EOS)
    outputs = [(i, [*encode(r[2] if i < 8 else harmony("Answer: B", "A")), OSS_EOS]) for i, r in enumerate(rows)]
    out = _score(tmp_path, "gpt-oss-120b", outputs, baseline=str(_baseline(tmp_path, 83.13)))
    assert out.report.per_dataset["gpqa_diamond"].correct == 0
    assert out.report.scores_percent["exact_match"] == 50.0
    assert not out.verdicts[0].passed


def test_execute_code_runs_the_tests_in_the_sandbox(tmp_path: Path) -> None:
    from accuracy._code_exec import CodeExecError, sandbox_prefix

    try:
        sandbox_prefix()
    except CodeExecError as exc:
        pytest.skip(str(exc))
    rows = [*R1_ROWS[4:], ("livecodebench", "lcb-2", "```python\nprint(int(input()) + 2)\n```")]
    write_set(tmp_path, rows, R1_EOS, {0: LCB_TESTS[4], 1: LCB_TESTS[4]})
    outputs = [(i, [*encode(r[2]), R1_EOS]) for i, r in enumerate(rows)]
    out = _score(tmp_path, "deepseek-r1", outputs, execute_code=True)
    lcb = out.report.per_dataset["livecodebench"]
    assert (lcb.correct, lcb.total, lcb.not_scored) == (1, 2, 0)  # 2*x passes, x+2 fails on 5 -> 7
    assert out.report.not_scored == {} and out.samples.rougeL == [100.0, 0.0]


def test_code_without_tests_is_not_scored_and_without_code_is_wrong(tmp_path: Path) -> None:
    rows = [R1_ROWS[4], ("livecodebench", "lcb-2", "no code block at all")]
    write_set(tmp_path, rows, R1_EOS)
    outputs = [(i, [*encode(r[2]), R1_EOS]) for i, r in enumerate(rows)]
    rep = _score(tmp_path, "deepseek-r1", outputs, execute_code=True).report
    lcb = rep.per_dataset["livecodebench"]
    assert (lcb.correct, lcb.total, lcb.not_scored, lcb.not_scored_reason) == (
        0,
        1,
        1,
        "no test cases in the dataset",
    )


def test_bad_inputs_are_one_line(tmp_path: Path) -> None:
    write_set(tmp_path, [("gsm8k", None, "Answer: 4")], R1_EOS)
    with pytest.raises(AccuracyLogError, match=r"^sample 0: field 'dataset': dataset 'gsm8k' contains none"):
        _score(tmp_path, "deepseek-r1", [(0, [65, R1_EOS])])
    with pytest.raises(AccuracyLogError, match="scorer 'rouge' runs no code"):
        _score(tmp_path, "deepseek-r1", [(0, [65, R1_EOS])], scorer={"kind": "rouge"}, execute_code=True)
    with pytest.raises(AccuracyLogError, match=r"names no sub-dataset per sample \(field 'dataset'\)"):
        score_accuracy_log(
            write_log(tmp_path, [(0, [65, 2])]),
            dataset_spec="synthetic:4:1",
            benchmark="deepseek-r1",
            fidelity=False,
        )


def test_per_dataset_lines_never_match_a_checker_pattern(tmp_path: Path) -> None:
    rows = [("gpqa", "A", "Answer: A"), ("gpqa", "A", "Answer: B"), ("math500", "2", "\\boxed{2}")]
    write_set(tmp_path, rows, R1_EOS)
    rep = _score(tmp_path, "deepseek-r1", [(i, [*encode(r[2]), R1_EOS]) for i, r in enumerate(rows)]).report
    lines = format_accuracy_txt(rep).splitlines()
    assert lines[0] == "dataset gpqa: 1 of 2 correct, exact match 50.00 %"
    for line in lines[:-2]:
        assert not any(p.match(line) for p in CHECKER.values()), line


def test_execute_code_where_it_cannot_be_isolated_is_refused_before_scoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accuracy import _code_exec

    monkeypatch.setattr(_code_exec, "_PREFIX", None)
    monkeypatch.setattr(_code_exec, "_PROBLEM", None)
    monkeypatch.setattr(_code_exec.shutil, "which", lambda _name: None)
    write_set(tmp_path, R1_ROWS, R1_EOS, LCB_TESTS)
    outputs = [(i, [*encode(r[2]), R1_EOS]) for i, r in enumerate(R1_ROWS)]
    with pytest.raises(AccuracyLogError, match=r"^--execute-code: refusing to run generated code") as err:
        _score(tmp_path, "deepseek-r1", outputs, execute_code=True, out_dir=tmp_path)
    assert "\n" not in str(err.value) and not (tmp_path / "accuracy.txt").exists()
