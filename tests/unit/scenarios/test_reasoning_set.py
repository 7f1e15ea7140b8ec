"""The packaged reasoning reference set (``reasoning:deepseek-r1``, ``reasoning:gpt-oss-120b``).

Its FP32 references must be answered correctly under BOTH MLPerf reference evaluators' extraction rules
(re-stated here from the v6.1 evaluators, independent of the project's scorers), the int8 outputs wrong
in exactly one category, the output lengths the benchmark's, the decoder able to read everything
without transformers, and the packaged bank what the generator writes.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from scenarios import Dataset, DatasetError, load_dataset, resolve_dataset, save_dataset
from scenarios._reasoning_bank import BANK_PATH, COUNTS, bank_json, build_bank, load_bank
from scenarios.reasoning_set import REASONING_MODELS, reasoning_outputs

MODELS = ("deepseek-r1", "gpt-oss-120b")
_MC = r"\b(?:ANSWER|FINAL\s*ANSWER)\b\s*[:=]?\s*(?:\(?\s*([A-{}])\s*\)?)(?:\s*$|[^A-Za-z])"


# ---- the references' extraction rules (facts sheet 2a, 2b) -------------------------------------
def _max_letter(kind: str) -> str:
    return "D" if kind == "gpqa" else "J"


def _r1_choice(text: str, kind: str) -> str | None:
    text = text.replace("\\n", "\n").replace('\\"', '"')
    found = list(re.finditer(_MC.format(_max_letter(kind)), text, re.IGNORECASE))
    if found:
        return found[-1].group(1).upper()
    if kind == "mmlu_pro":
        letters = re.findall(r"\b([A-J])\b", text, re.IGNORECASE)
        return letters[-1].upper() if letters else None
    return None


def _last_boxed(text: str) -> str | None:
    at = text.rfind("\\boxed{")
    if at < 0:
        return None
    depth, start = 0, at + len("\\boxed{")
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            if depth == 0:
                return text[start:i].strip()
            depth -= 1
    return None


def _aime(text: str) -> int | None:
    found = re.findall(r"\\boxed{\s*(\d+)\s*}", text)
    if not found:
        found = re.findall(r"Answer:\s*(\d+)(?!\.)\b", text, re.IGNORECASE | re.MULTILINE)
    value = int(found[-1]) if found else None
    return value if value is not None and 0 <= value <= 999 else None


def _final_section(text: str) -> str:
    m = re.search(r"<\|channel\|>final[^<]*<\|message\|>(.*?)(?:<\|return\|>|$)", text, re.DOTALL)
    return m.group(1).strip() if m else text


def _oss_choice(text: str, kind: str) -> str | None:
    final = re.sub(r"\*\*([^*]+)\*\*", r"\1", _final_section(text)).strip()
    top = _max_letter(kind)
    m = re.match(rf"^[^a-zA-Z]*([A-{top}])(?:[^a-zA-Z]|$)", final, re.IGNORECASE)
    if m:
        return m.group(1).upper()
    m = re.search(rf"\b(?:Answer|ANSWER)\s*[:.]?\s*([A-{top}])\b", final, re.IGNORECASE)
    if m:
        return m.group(1).upper()
    return _r1_choice(text, kind) if kind == "gpqa" else None


def _python_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```python(.*?)```", text, re.DOTALL)]


def _extract(model: str, text: str, kind: str) -> str | None:
    """What the model's reference evaluator takes as the answer (a letter, boxed text, an integer, code)."""
    if kind in ("gpqa", "mmlu_pro"):
        return _r1_choice(text, kind) if model == "deepseek-r1" else _oss_choice(text, kind)
    if kind == "math500":
        return _last_boxed(text)
    if kind == "aime":
        value = _aime(text)
        return None if value is None else str(value)
    blocks = _python_blocks(text if model == "deepseek-r1" else _final_section(text))
    return (blocks[0] if model == "deepseek-r1" else blocks[-1]) if blocks else None


def _text(model: str, ds: Dataset, ids: list[int] | np.ndarray) -> str:
    # deepseek-r1 decodes with skip_special_tokens=True, gpt-oss-120b with False (harmony markers kept).
    return ds.decode(ids, skip_special_tokens=model == "deepseek-r1").strip()


# ---- tests -----------------------------------------------------------------------------------
def test_the_packaged_bank_is_what_the_generator_writes() -> None:
    assert BANK_PATH.read_text(encoding="utf-8") == bank_json(build_bank()), "run python -m scenarios._reasoning_bank"
    assert BANK_PATH.stat().st_size < 100_000
    bank = load_bank()
    assert [p.dataset for p in bank.problems] == [k for k, n in COUNTS.items() for _ in range(n)]


@pytest.mark.parametrize("model", MODELS)
def test_fp32_references_answer_every_ground_truth_under_the_reference_rules(model: str) -> None:
    ds = resolve_dataset(f"reasoning:{model}")
    assert len(ds) == sum(COUNTS.values()) and ds.categories == ds.datasets
    for i, ref in enumerate(ds.reference_ids):
        kind, truth = ds.datasets[i], ds.ground_truths[i]
        assert kind is not None and truth is not None
        got = _extract(model, _text(model, ds, ref), kind)
        if kind == "livecodebench":
            tests = ds.tests[i]
            assert got is not None and tests is not None and _passes(got, tests.inputs, tests.outputs, tests.fn_name)
        else:
            assert got == truth, f"{model} sample {i} ({kind}): extracted {got!r}, ground truth {truth!r}"


def test_some_reasoning_names_a_wrong_option_or_value_before_the_final_answer() -> None:
    ds = resolve_dataset("reasoning:deepseek-r1")
    wrong_first = 0
    for i, ref in enumerate(ds.reference_ids):
        kind = ds.datasets[i]
        text = _text("deepseek-r1", ds, ref)
        if kind in ("gpqa", "mmlu_pro"):
            letters = [m.group(1).upper() for m in re.finditer(_MC.format(_max_letter(kind)), text, re.IGNORECASE)]
            wrong_first += len(letters) > 1 and letters[0] != letters[-1]
        elif kind in ("math500", "aime"):
            boxed = re.findall(r"\\boxed\{", text)
            wrong_first += len(boxed) > 1
        if kind == "livecodebench":  # deepseek-r1 takes the FIRST python block: none may sit in the reasoning
            n_reasoning = ds.reference_reasoning[i]
            assert n_reasoning is not None and "```python" not in ds.decode(ref[:n_reasoning])
    assert wrong_first >= 10


@pytest.mark.parametrize("model", MODELS)
def test_int8_is_wrong_only_on_some_math500_answers(model: str) -> None:
    ds = resolve_dataset(f"reasoning:{model}")
    fp32, n_fp32 = reasoning_outputs(model, "fp32")
    int8, n_int8 = reasoning_outputs(model, "int8")
    assert n_fp32 == n_int8 == ds.reference_reasoning
    assert [list(r) for r in ds.reference_ids] == fp32
    wrong = []
    for i, (a, b) in enumerate(zip(fp32, int8, strict=True)):
        assert a[: n_fp32[i]] == b[: n_int8[i]]  # the same reasoning at every precision
        if a == b:
            continue
        assert ds.datasets[i] == "math500"
        got, truth = _extract(model, _text(model, ds, b), "math500"), ds.ground_truths[i]
        assert got is not None and truth is not None and got != truth
        assert _graded_wrong(got, truth), (got, truth)
        wrong.append(i)
    n_math = ds.datasets.count("math500")
    assert 0 < len(wrong) < n_math


def _graded_wrong(got: str, truth: str) -> bool:
    """The wrong forms the int8 answers use, each wrong under PRM800K's grader: an unreduced fraction
    (fractions compare as strings), a flipped sign, an interval with its brackets swapped."""
    frac = re.compile(r"^-?\\frac\{(\d+)\}\{(\d+)\}$")
    g, t = frac.match(got), frac.match(truth)
    if g and t and got.startswith("-") == truth.startswith("-"):
        return Fraction(int(g[1]), int(g[2])) == Fraction(int(t[1]), int(t[2]))  # same value, unreduced
    if got.lstrip("-") == truth.lstrip("-"):
        return got.startswith("-") != truth.startswith("-")
    return got[1:-1] == truth[1:-1] and (got[0], got[-1]) != (truth[0], truth[-1])


@pytest.mark.parametrize("model", MODELS)
def test_output_lengths_have_the_benchmarks_mean_and_spread(model: str) -> None:
    ds = resolve_dataset(f"reasoning:{model}")
    spec = REASONING_MODELS[model]
    lengths = [len(r) for r in ds.reference_ids]
    assert statistics.mean(lengths) == pytest.approx(spec.mean_output_tokens, rel=0.002)
    assert statistics.pstdev(lengths) == pytest.approx(spec.sd_output_tokens, rel=0.15)
    assert len(set(lengths)) > len(lengths) * 0.9  # drawn per sample, not one length
    if model == "gpt-oss-120b":  # TEST09's bounds around the reference mean
        assert 1150.38 <= statistics.mean(lengths) <= 1406.02
    else:  # the checker's TOKENS_PER_SAMPLE window
        assert 3497.60466 <= statistics.mean(lengths) <= 4274.85014
    # Mostly reasoning, as the real models' outputs are.
    assert sum(n or 0 for n in ds.reference_reasoning) / sum(lengths) > 0.9


@pytest.mark.parametrize("model", MODELS)
def test_reasoning_and_answer_split_where_the_time_to_first_answer_starts(model: str) -> None:
    ds = resolve_dataset(f"reasoning:{model}")
    for i, ref in enumerate(ds.reference_ids):
        n = ds.reference_reasoning[i]
        assert n is not None and 0 < n < len(ref)
        reasoning = ds.decode(ref[:n], skip_special_tokens=False)
        answer = ds.decode(ref[n:], skip_special_tokens=False)
        if model == "deepseek-r1":
            assert reasoning.endswith("</think>") and reasoning.count("</think>") == 1 and "<think>" not in reasoning
            assert answer.startswith("\n\n") and answer.endswith("<｜end▁of▁sentence｜>") and "</think>" not in answer
        else:
            assert reasoning.startswith("<|channel|>analysis<|message|>")
            assert reasoning.endswith("<|end|><|start|>assistant<|channel|>final<|message|>")
            assert answer.endswith("<|return|>") and "<|channel|>" not in answer
            assert _final_section(_text(model, ds, ref)) == answer.removesuffix("<|return|>").strip()
        assert int(ref[-1]) == ds.eos_token_id and ds.eos_token_id not in ref[:-1].tolist()
        assert ds.decode(ds.input_ids[i], skip_special_tokens=False) == ds.prompts[i]


@pytest.mark.parametrize("model", MODELS)
def test_a_scaled_set_shortens_only_the_reasoning(model: str) -> None:
    full = resolve_dataset(f"reasoning:{model}")
    quick = resolve_dataset(f"reasoning:{model}:0.1")
    assert quick.name == f"reasoning-{model}@0.1" and quick.digest() != full.digest()
    for i, (a, b) in enumerate(zip(full.reference_ids, quick.reference_ids, strict=True)):
        na, nb = full.reference_reasoning[i], quick.reference_reasoning[i]
        assert na is not None and nb is not None and nb < na
        assert nb == max(round(na * 0.1), nb)  # a tenth, or the problem's own sentences when that is more
        assert a[na:].tolist() == b[nb:].tolist()  # the same answer
        assert _extract(model, _text(model, quick, b), str(quick.datasets[i])) == _extract(
            model, _text(model, full, a), str(full.datasets[i])
        )


def test_the_set_is_deterministic_and_round_trips_through_a_file(tmp_path: Path) -> None:
    a, b = resolve_dataset("reasoning:gpt-oss-120b"), resolve_dataset("reasoning:gpt-oss-120b")
    assert a.digest() == b.digest()
    again = load_dataset(save_dataset(a, tmp_path / "r.jsonl.gz"))
    assert again.digest() == a.digest() and again.reference_reasoning == a.reference_reasoning
    assert again.decode(again.reference_ids[0], skip_special_tokens=False) == a.decode(
        a.reference_ids[0], skip_special_tokens=False
    )
    # A second process builds the very same set (no state, no hash randomisation involved).
    code = "from scenarios import resolve_dataset as r; print(r('reasoning:deepseek-r1:0.5').digest())"
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == resolve_dataset("reasoning:deepseek-r1:0.5").digest()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("reasoning:llama", "dataset 'reasoning:llama': expected one of deepseek-r1, gpt-oss-120b"),
        ("reasoning:deepseek-r1:0", "reasoning scale: expected 0 < scale <= 1, got 0"),
        ("reasoning:deepseek-r1:1.5", "expected 0 < scale <= 1, got 1.5"),
        ("reasoning:deepseek-r1:nan", "expected 0 < scale <= 1"),
        ("reasoning:gpt-oss-120b:fast", "with a number scale"),
    ],
)
def test_a_bad_reasoning_spec_is_one_line(spec: str, message: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)):
        resolve_dataset(spec)


def test_interactive_names_resolve_to_their_benchmarks_set() -> None:
    assert (
        resolve_dataset("reasoning:gpt-oss-120b-interactive").digest()
        == resolve_dataset("reasoning:gpt-oss-120b").digest()
    )


def _passes(code: str, inputs: list[str], outputs: list[str], fn_name: str | None) -> bool:
    """Runs the project's own answer code (never model output) in a child: call-based or stdin."""
    for given, expected in zip(inputs, outputs, strict=True):
        if fn_name:
            args = ", ".join(json.dumps(json.loads(x)) for x in given.split("\n"))
            prog = f"{code}\nimport json\nprint(json.dumps(Solution().{fn_name}({args})))"
            proc = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=60)
            ok = json.loads(proc.stdout) == json.loads(expected)
        else:
            proc = subprocess.run([sys.executable, "-c", code], input=given, capture_output=True, text=True, timeout=60)
            ok = proc.stdout.strip().splitlines() == expected.strip().splitlines()
        if proc.returncode != 0 or not ok:
            return False
    return True
