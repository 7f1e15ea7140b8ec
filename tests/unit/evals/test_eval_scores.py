"""Eval scores: reading an Inspect JSON log, intervals, paired deltas, the gate's eval objectives and the
under-load judgement, each failing on a planted fault and passing on a clean pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats

from common import UsageError
from evals import ALL_CATEGORIES, SampleScore, TaskScore, compare_scores, mean_interval, read_inspect_log
from gate import GateInputs, SloSpec, evaluate_slo
from workflows import judge_under_load


def _log(path: Path, values: list[str], categories: list[str], answers: list[str], status: str = "success") -> Path:
    samples = [
        {
            "id": i,
            "epoch": 1,
            "metadata": {"category": cat},
            "scores": {"includes": {"value": v}},
            "output": {"completion": a, "metadata": {"ttft_ms": 1.5, "tpot_ms": 0.5}},
            "started_at": "2026-12-07T10:00:01+00:00",
            "completed_at": "2026-12-07T10:00:02+00:00",
        }
        for i, (v, cat, a) in enumerate(zip(values, categories, answers, strict=True))
    ]
    path.write_text(json.dumps({"status": status, "eval": {"task": "t"}, "samples": samples}))
    return path


def _score(tmp: Path, name: str, values: list[str], answers: list[str] | None = None) -> TaskScore:
    cats = ["qa", "qa", "qa", "qa", "math", "math", "math", "math"]
    return read_inspect_log(_log(tmp / f"{name}.json", values, cats, answers or values), name)


def test_a_log_reads_as_per_category_scores_with_t_intervals(tmp_path: Path) -> None:
    s = _score(tmp_path, "a", ["C", "C", "I", "C", "I", "I", "C", "I"])
    assert [c.category for c in s.categories] == [ALL_CATEGORIES, "math", "qa"]
    assert s.overall.score == pytest.approx(0.5) and s.overall.n_samples == 8
    qa = s.category("qa")
    assert qa is not None and qa.score == pytest.approx(0.75)
    half = stats.t.ppf(0.975, 3) * 0.5 / 2  # sd of [1,1,0,1] is 0.5, n = 4
    assert 0.75 + half > 1 and 0.75 - half < 0  # four binary scores: the t interval reaches past both ends
    assert (qa.ci_low, qa.ci_high) == (0.0, 1.0)  # clipped to the 0..1 a score spans
    h = stats.t.ppf(0.975, 7) * (2 / 7) ** 0.5 / 8**0.5  # eight scores, four of them 1: variance 2/7
    assert (s.overall.ci_low, s.overall.ci_high) == pytest.approx((0.5 - h, 0.5 + h))
    assert s.samples[0].ttft_ms == 1.5 and s.samples[0].started_unix_s is not None
    assert mean_interval([0.4]) == (0.4, 0.4, 0.4)


def test_a_log_of_a_failed_eval_or_an_unscored_sample_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="did not finish"):
        read_inspect_log(_log(tmp_path / "e.json", ["C"], ["qa"], ["x"], status="error"), "x")
    raw = tmp_path / "u.json"
    raw.write_text(json.dumps({"status": "success", "samples": [{"id": 1, "scores": {}}]}))
    with pytest.raises(UsageError, match="field 'scores'"):
        read_inspect_log(raw, "x")
    bad = _log(tmp_path / "v.json", ["maybe"], ["qa"], ["x"])
    with pytest.raises(UsageError, match="expected a score C/I/P/N"):
        read_inspect_log(bad, "x")


def test_a_slipped_category_fails_max_task_drop_and_a_clean_candidate_passes(tmp_path: Path) -> None:
    base = _score(tmp_path, "base", ["C", "C", "C", "C", "C", "I", "C", "I"])
    slipped = _score(tmp_path, "cand", ["I", "I", "I", "I", "C", "I", "C", "I"])  # planted: qa lost
    deltas = compare_scores(base, slipped)
    by_cat = {d.category: d for d in deltas}
    assert by_cat["qa"].delta == pytest.approx(-1.0) and by_cat["qa"].ci_high < 0
    assert by_cat["math"].delta == 0 and by_cat["math"].changed_answers == 0
    slo = SloSpec(require_valid=False, max_task_drop=0.1, min_task_score=0.5)
    report = evaluate_slo(slo, GateInputs(evals=[slipped], eval_deltas=deltas))
    failed = {o.name for o in report.violations}
    assert failed == {"task_drop[t]", "task_drop[t/qa]", "task_score[t]"}
    same = compare_scores(base, base)
    assert evaluate_slo(slo, GateInputs(evals=[base], eval_deltas=same)).passed
    missing = evaluate_slo(slo, GateInputs())
    assert not missing.passed and "--inspect TASK" in missing.violations[0].line


def test_under_load_a_changed_answer_fails_and_equal_answers_pass(tmp_path: Path) -> None:
    values = ["C", "C", "I", "C", "I", "I", "C", "I"]
    idle = _score(tmp_path, "idle", values, [f"a{i}" for i in range(8)])
    same = _score(tmp_path, "same", values, [f"a{i}" for i in range(8)])
    window = (same.samples[0].started_unix_s - 1, same.samples[0].completed_unix_s + 1)  # type: ignore[operator]
    ok = judge_under_load(idle, same, window)
    assert ok.passed and ok.n_under_load == 8 and "PASS" in ok.line
    changed = _score(tmp_path, "changed", values, [f"a{i}" for i in range(7)] + ["other"])  # planted: one answer
    bad = judge_under_load(idle, changed, window)
    assert not bad.passed and bad.changed_answers == 1 and "1 of 8 answers changed" in bad.line
    outside = judge_under_load(idle, same, (0.0, 1.0))
    assert not outside.passed and "no eval request ran under load" in outside.line


def test_samples_are_paired_by_id_and_none_in_common_is_refused() -> None:
    a = TaskScore(
        task="t",
        target="x",
        scorer="s",
        samples=[SampleScore(sample_id="1#1", category="c", score=1, answer="")],
        categories=[],
    )
    b = a.model_copy(update={"samples": [SampleScore(sample_id="2#1", category="c", score=1, answer="")]})
    with pytest.raises(UsageError, match="no sample in common"):
        compare_scores(a, b)


def test_the_validate_table_has_eval_rows_with_intervals_and_names_the_slipped_category(tmp_path: Path) -> None:
    from workflows._validate import ArtifactEvidence, ValidateConfig, decide

    values = ["C", "C", "C", "C", "C", "I", "C", "I"]
    base = ArtifactEvidence(name="sim-fp32", evals=[_score(tmp_path, "b", values)])
    lost = ["I", "I", "I", "I", "C", "I", "C", "I"]  # planted: qa lost
    cand = ArtifactEvidence(name="sim-int8", evals=[_score(tmp_path, "c", lost)])
    cfg = ValidateConfig(baseline="sim-fp32", candidate="sim-int8", out_dir=tmp_path)
    slo = SloSpec(require_valid=False, max_task_drop=0.1)
    report = decide(cfg, slo, base, cand)
    assert report.verdict == "NO DEPLOY"
    rows = {r.objective: r for r in report.rows}
    assert not rows["eval[t/qa]"].passed and "95% CI [-1.000, -1.000]" in rows["eval[t/qa]"].candidate
    assert rows["eval[t/math]"].passed and rows["eval[t/math]"].limit == "drop <= 0.1"
    assert any(line.startswith("eval t/qa: 1.000 -> 0.000") for line in report.slippage)
    clean = decide(cfg, slo, base, base.model_copy(update={"name": "same"}))
    assert clean.verdict == "DEPLOY" and not clean.eval_deltas[0].changed_answers
    from history._outcomes import records_for

    # An eval-only validate is recorded per artifact: its scores (with intervals) and the verdict.
    recs = records_for("validate", report)
    scores = [r.metric("eval.score[t/qa]") for r in recs]
    assert [m.value for m in scores if m is not None] == [1.0, 0.0]
    assert [v.passed for r in recs for v in r.verdicts] == [True, False]


def test_a_run_with_an_eval_under_load_is_recorded_with_its_scores_and_verdict(tmp_path: Path) -> None:
    from history._extract import record_run_dir
    from tests.history_runs import manifest, write_run
    from workflows import EVAL_UNDER_LOAD_FILE

    run_dir = write_run(tmp_path / "out", "r1", manifest("b1"))
    values = ["C", "C", "I", "C", "I", "I", "C", "I"]
    idle = _score(tmp_path, "idle", values, [f"a{i}" for i in range(8)])
    changed = _score(tmp_path, "changed", values, [f"a{i}" for i in range(7)] + ["other"])
    window = (0.0, 4e9)
    (run_dir / EVAL_UNDER_LOAD_FILE).write_text(judge_under_load(idle, changed, window).model_dump_json())
    rec = record_run_dir(run_dir, "run")
    qa = rec.metric("eval.score_under_load[t/qa]")
    assert qa is not None and qa.unit == "fraction" and qa.ci_low is not None and 0 <= qa.ci_low <= qa.value
    assert rec.metric("eval.score_idle[t]") is not None
    (verdict,) = [v for v in rec.verdicts if v.kind == "eval-under-load"]
    assert not verdict.passed and "answers changed under load" in verdict.message


def test_the_run_report_shows_the_eval_under_load_and_refuses_a_malformed_one(tmp_path: Path) -> None:
    from tests.history_runs import manifest, write_run
    from workflows import EVAL_UNDER_LOAD_FILE
    from workflows._report import ReportError, write_report

    run_dir = write_run(tmp_path / "out", "r1", manifest("b1"))
    values = ["C", "C", "I", "C", "I", "I", "C", "I"]
    idle = _score(tmp_path, "idle", values, [f"a{i}" for i in range(8)])
    changed = _score(tmp_path, "changed", values, [f"a{i}" for i in range(7)] + ["other"])
    (run_dir / EVAL_UNDER_LOAD_FILE).write_text(judge_under_load(idle, changed, (0.0, 4e9)).model_dump_json())
    page = write_report(run_dir).read_text()
    assert '<h2 id="eval-under-load">' in page and '<p id="eval-verdict" class="fail"><b>FAIL</b>' in page
    assert "<td>qa</td><td>0.750 [" in page and "median TTFT idle 1.5 ms" in page
    (run_dir / EVAL_UNDER_LOAD_FILE).write_text("{}")
    with pytest.raises(ReportError, match=f"{EVAL_UNDER_LOAD_FILE}: not an eval-under-load result"):
        write_report(run_dir)


def test_lm_eval_samples_read_as_one_task_with_a_category_per_subtask(tmp_path: Path) -> None:
    from evals import read_lm_eval_samples

    run = tmp_path / "out" / "model"
    run.mkdir(parents=True)
    for sub, hits in (("mmlu_a", [1.0, 0.0]), ("mmlu_b", [1.0, 1.0])):
        rows = [
            {"doc_id": i, "metrics": ["exact_match"], "exact_match": h, "filtered_resps": [f"r{i}"]}
            for i, h in enumerate(hits)
        ]
        (run / f"samples_{sub}_2026-12-07T19-43-44.903531.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    score = read_lm_eval_samples(tmp_path / "out", "mmlu", "x")
    assert score.task == "mmlu" and score.overall.score == pytest.approx(0.75)
    assert [(c.category, c.score) for c in score.categories[1:]] == [("mmlu_a", 0.5), ("mmlu_b", 1.0)]
    (run / "samples_mmlu_c_2026-12-07T19-43-44.903531.jsonl").write_text('{"doc_id": 0, "metrics": []}')
    with pytest.raises(UsageError, match="line 1: expected an lm-eval sample"):
        read_lm_eval_samples(tmp_path / "out", "mmlu", "x")
    with pytest.raises(UsageError, match="wrote no samples"):
        read_lm_eval_samples(tmp_path / "empty", "mmlu", "x")


def test_a_missing_extra_is_one_line_naming_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    import evals._runner as runner
    from cli import main
    from evals import InspectRun, run_inspect

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("inspect_ai", "lm_eval") else real(name, *a)
    )
    assert not runner.inspect_available()
    with pytest.raises(UsageError, match=r"--inspect: needs Inspect AI: pip install 'lpuperf\[inspect\]'"):
        run_inspect(InspectRun(task="t.py"), "127.0.0.1:1", tmp_path)
    assert main(["evals", "lm-eval", "--model", "lpuperf", "--tasks", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lpuperf evals: error: lm-eval: not installed: pip install 'lpuperf[lm-eval]'"]
