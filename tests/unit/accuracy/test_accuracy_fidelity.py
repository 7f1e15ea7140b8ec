"""Fidelity vs FP32: planted divergences are found at the right token, in the right category."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from accuracy import (
    AccuracyLogError,
    AccuracyReport,
    compare_outputs,
    first_divergence,
    last_number,
    load_accuracy_report,
    load_baseline,
    load_fidelity_report,
    recording_fidelity,
    render_markdown,
    write_accuracy_files,
)
from cli import main
from scenarios import ByteDecoder, Dataset, Recording, save_dataset, save_recording

EOS = 1
WORDS = ["the", "sum", "is", "story", "of", "a", "cat", "who", "sat", "answer", "city", "river"]
NUM0 = 100  # ids 100..199 decode to " 0".." 99"


def _dataset() -> Dataset:
    pieces = {EOS: b""} | {10 + i: f" {w}".encode() for i, w in enumerate(WORDS)}
    pieces |= {NUM0 + n: f" {n}".encode() for n in range(100)}
    rng = np.random.default_rng(7)
    cats, prompts, targets, answers, inputs, refs = [], [], [], [], [], []
    for i in range(30):
        cat = ("qa", "summarization", "arithmetic")[i % 3]
        body = rng.integers(10, 10 + len(WORDS), 12).tolist()
        answer = None
        if cat == "arithmetic":
            n = int(rng.integers(0, 100))
            answer = str(n)
            body = [*body[:6], 10 + WORDS.index("answer"), 10 + WORDS.index("is"), NUM0 + n]
        cats.append(cat)
        prompts.append(f"prompt {i}")
        inputs.append(np.array([10 + i % 5, 11], dtype=np.int32))
        refs.append(np.array([*body, EOS], dtype=np.int32))
        targets.append("target")
        answers.append(answer)
    return Dataset("fid", EOS, cats, prompts, targets, answers, inputs, refs, decoder=ByteDecoder(pieces))


def _plant(ds: Dataset) -> list[np.ndarray]:
    out = [r.copy() for r in ds.reference_ids]
    for i in range(30):
        if ds.categories[i] == "arithmetic" and i % 2 == 0:
            out[i][-2] = NUM0 + (int(out[i][-2]) - NUM0 + 1) % 100  # wrong numeric answer, last token before EOS
    out[1] = np.array([*ds.reference_ids[1][:5], EOS], dtype=np.int32)  # summarization truncated after 5 tokens
    return out


def test_planted_divergences_are_located_and_aggregated() -> None:
    ds = _dataset()
    rep = compare_outputs(ds, _plant(ds), candidate_name="int8")
    arith = rep.by_category["arithmetic"]
    wrong = [i for i in range(30) if ds.categories[i] == "arithmetic" and i % 2 == 0]
    assert arith.n == 10
    assert arith.exact_match_fraction == pytest.approx(1 - len(wrong) / 10)
    assert arith.answer_accuracy_fraction == pytest.approx(1 - len(wrong) / 10)
    assert arith.reference_answer_accuracy_fraction == 1.0
    assert arith.mean_first_divergence == 8.0  # the answer token sits at position 8
    assert rep.by_category["qa"].exact_match_fraction == 1.0 and rep.by_category["qa"].rouge_l_percent == 100.0
    summ = rep.by_category["summarization"]
    assert summ.exact_match_fraction == pytest.approx(9 / 10) and summ.rouge_l_percent < 100.0
    by_index = {s.index: s for s in rep.samples}
    assert by_index[1].first_divergence == 5 and by_index[1].candidate_tokens == 5
    assert rep.worst[0].index == 1 and rep.worst[0].reference_text.startswith(rep.worst[0].candidate_text)
    assert rep.overall.exact_match_fraction == pytest.approx((30 - len(wrong) - 1) / 30)
    md = render_markdown(rep)
    assert "| arithmetic | 10 |" in md and "sample 1 (summarization)" in md


def test_identical_outputs_report_full_fidelity() -> None:
    ds = _dataset()
    rep = compare_outputs(ds, [r.copy() for r in ds.reference_ids])
    assert rep.overall.exact_match_fraction == 1.0 and rep.overall.rouge_l_percent == 100.0 and not rep.worst
    assert "matches the FP32 reference exactly" in render_markdown(rep)


def test_helpers() -> None:
    assert first_divergence(np.array([1, 2, 3]), np.array([1, 2, 3])) is None
    assert first_divergence(np.array([1, 2]), np.array([1, 2, 3])) == 2
    assert first_divergence(np.array([1, 5, 3]), np.array([1, 2, 3])) == 1
    assert last_number("so 1,200 apples and 3.50 pears") == "3.5"
    assert last_number("no digits") is None


def test_recording_fidelity_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = _dataset()
    ds_path = save_dataset(ds, tmp_path / "fid.jsonl")
    digest = ds.digest()
    save_recording(Recording("fp32", list(ds.reference_ids), digest), tmp_path / "fp32.npz")
    save_recording(Recording("int8", _plant(ds), digest), tmp_path / "int8.npz")
    rep, files = recording_fidelity(str(tmp_path / "int8.npz"), str(tmp_path / "fp32.npz"), str(ds_path), tmp_path)
    assert rep.by_category["arithmetic"].answer_accuracy_fraction == pytest.approx(0.5)
    assert json.loads(files[0].read_text())["overall"]["exact_match_fraction"] == rep.overall.exact_match_fraction
    assert load_fidelity_report(files[0]) == rep
    argv = ["accuracy", "fidelity", "--candidate", str(tmp_path / "int8.npz"), "--reference"]
    argv += [str(tmp_path / "fp32.npz"), "--dataset", str(ds_path), "--out", str(tmp_path / "cli")]
    assert main(argv) == 0
    assert "arithmetic: exact match 50.0%" in capsys.readouterr().out
    other = Recording("int8", _plant(ds), "0" * 64)
    save_recording(other, tmp_path / "other.npz")
    argv[3] = str(tmp_path / "other.npz")
    assert main(argv) == 2
    assert "recorded on another dataset" in capsys.readouterr().err


def test_report_loaders_name_the_file_and_field(tmp_path: Path) -> None:
    report = AccuracyReport(benchmark="embedded", scores_percent={"rougeL": 38.7})
    _, js = write_accuracy_files(report, tmp_path)
    assert load_accuracy_report(js) == report
    bad = {
        "accuracy.json": (load_accuracy_report, {"scores": {"rougeL": 38.7}}, "field 'scores'"),
        "fidelity.json": (load_fidelity_report, {"overall": {"exact_match_rate": 1.0}}, "field 'candidate'"),
    }
    for name, (load, content, field) in bad.items():
        f = tmp_path / "bad" / name
        f.parent.mkdir(exist_ok=True)
        f.write_text(json.dumps(content))
        with pytest.raises(AccuracyLogError) as info:
            load(f)
        msg = str(info.value)
        assert "\n" not in msg and str(f) in msg and field in msg, msg


def test_fidelity_rejects_a_rouge_l_outside_percent_and_a_fraction_above_one() -> None:
    rep = compare_outputs(_dataset(), _dataset().reference_ids[:6], indices=list(range(6)))
    for key, value in (("exact_match_fraction", 100.0), ("rouge_l_percent", 150.0)):
        raw = json.loads(rep.model_dump_json())
        raw["overall"][key] = value
        with pytest.raises(ValueError, match=key):
            type(rep).model_validate(raw)


def test_shipped_baseline_as_report_keeps_percent_scores() -> None:
    base = load_baseline("embedded")
    as_report = base.as_report()
    assert as_report.scores_percent == base.metrics and as_report.benchmark == "embedded"
