"""The exact-match scorers of MLPerf v6.1's reasoning benchmarks: ``exact_match-deepseek-r1`` and
``exact_match-gpt-oss-120b``, registry entries beside ``rouge``.

Each reproduces its reference evaluator: routing by dataset name, extraction (:mod:`accuracy._exact_match`),
grading (letters, AIME integers, PRM800K's MATH grader in :mod:`accuracy._math_grade`, LiveCodeBench tests
in :mod:`accuracy._code_exec`) and aggregation:

* deepseek-r1 (``language/deepseek-r1/eval_accuracy.py``): the log is de-duplicated by ``qsl_idx`` (first
  entry wins), the text decoded with special tokens skipped; ``exact_match`` is the plain mean of 100/0
  over the samples and ``tokens_per_sample`` the mean count of int32 output tokens;
* gpt-oss-120b (``language/gpt-oss-120b/eval_mlperf_accuracy.py``): every log entry counts, the text is
  decoded with special tokens kept (the harmony channels); ``exact_match`` weighs each dataset's correct
  count by its repeats (``aime25`` 8, ``gpqa_diamond`` 5, ``livecodebench_v6`` 3): sum(correct/repeats)
  over sum(total/repeats), in percent.

Where lpuperf departs from the references it says so instead of guessing: code answers are executed only
on request (otherwise ``not_scored``, kept out of every figure), a sympy step past its time limit is graded
wrong and counted (``grading_timeouts``), and an unknown dataset name is one error line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from accuracy import _exact_match as em
from accuracy._code_exec import CodeLimits, run_programs, sandbox_prefix
from accuracy._evaluate import (
    DEEPSEEK_R1_SCORER,
    GPT_OSS_SCORER,
    AccuracyReport,
    DatasetScore,
)
from accuracy._log import AccuracyLogError
from accuracy._math_grade import Grade, SympyJudge, grade_answer
from accuracy._scorers import NO_FIELDS, SampleFields, ScorerConfig

# eval_mlperf_accuracy.py's DATASET_REPEATS (keys are the lower-cased dataset names).
GPT_OSS_REPEATS = {"aime25": 8, "gpqa_diamond": 5, "livecodebench_v6": 3}
Verdict = Literal["correct", "wrong", "not_scored", "timeout"]
NOT_EXECUTED = "code not executed (lpuperf accuracy --execute-code runs it in a sandbox)"
NO_TESTS = "no test cases in the dataset"


class ExactMatchScorerConfig(ScorerConfig):
    kind: str
    execute_code: bool = Field(default=False, description="run LiveCodeBench tests in the sandbox (opt-in)")
    code_timeout_s: float = Field(default=60.0, gt=0, description="per test, as MLPerf's LiveCodeBench runs")
    code_memory_mb: int = Field(default=4096, ge=64, description="address-space limit of each program")
    code_workers: int = Field(default=1, ge=0, description="programs run at once (0 = all cores)")
    math_timeout_s: float = Field(default=10.0, gt=0, description="limit of one sympy equivalence check")


@dataclass
class SampleVerdict:
    dataset: str  # the aggregation key (gpt-oss: lower-cased)
    extracted: str | None
    verdict: Verdict
    reason: str = ""


@dataclass
class _CodeJob:
    sample: int
    code: str
    tests: Any  # scenarios.CodeTests


class _ExactMatch:
    """Shared machinery; subclasses fix the model's routes, extraction and aggregation."""

    config_model: ClassVar[type[BaseModel]] = ExactMatchScorerConfig
    kind: ClassVar[str]
    routes: ClassVar[tuple[em.Route, ...]]
    # How the pipeline reads the log and decodes for this evaluator.
    dedupe_log: ClassVar[bool] = True
    skip_special_tokens: ClassVar[bool] = True

    def __init__(self, config: ExactMatchScorerConfig) -> None:
        self.config = config
        self.verdicts: list[SampleVerdict] = []  # the last score()'s per-sample detail

    # -- per model ------------------------------------------------------------------------------
    def choice(self, text: str, options: str) -> str | None:
        raise NotImplementedError

    def code(self, text: str) -> str | None:
        raise NotImplementedError

    def group(self, dataset: str) -> str:
        return dataset

    def aggregate(self, per: dict[str, DatasetScore]) -> float:
        raise NotImplementedError

    # -- scoring --------------------------------------------------------------------------------
    def score(
        self,
        predictions: Sequence[str],
        targets: Sequence[str],
        token_counts: Sequence[int],
        fields: SampleFields = NO_FIELDS,
    ) -> tuple[AccuracyReport, list[float]]:
        datasets, ground_truths = fields.datasets, fields.ground_truths
        raw_token_ids, tests = fields.raw_token_ids, fields.tests
        n = len(predictions)
        if datasets is None or all(d is None for d in datasets):
            raise AccuracyLogError(
                f"scorer '{self.kind}': the dataset names no sub-dataset per sample (field 'dataset'); "
                "exact match routes on it (MLPerf's table or lpuperf's reasoning set has it)"
            )
        if self.config.execute_code:
            sandbox_prefix()  # refuse before grading anything when code cannot be isolated here
        truths = list(ground_truths) if ground_truths is not None else [None] * n
        code_tests = list(tests) if tests is not None else [None] * n
        counts = [len(ids) for ids in raw_token_ids] if raw_token_ids is not None else [int(c) for c in token_counts]
        self.verdicts = []
        jobs: list[_CodeJob] = []
        with SympyJudge(timeout_s=self.config.math_timeout_s) as judge:
            for i, text in enumerate(predictions):
                verdict, job = self._grade(i, text, datasets[i], truths[i], code_tests[i], judge)
                self.verdicts.append(verdict)
                if job is not None:
                    jobs.append(job)
        self._run_code(jobs)
        per = self._per_dataset()
        return self._report(per, counts), [_sample_score(v.verdict) for v in self.verdicts]

    def _grade(
        self, i: int, text: str, dataset: str | None, truth: str | None, tests: Any, judge: SympyJudge
    ) -> tuple[SampleVerdict, _CodeJob | None]:
        try:
            rule = em.route(dataset, self.routes)
        except em.UnknownDatasetError as exc:
            raise AccuracyLogError(f"sample {i}: field 'dataset': {exc}") from None
        key = self.group(str(dataset))
        s = em.clean(text)
        if rule.kind == "choice":
            got = self.choice(s, rule.options)
            return SampleVerdict(key, got, _ok(em.grade_choice(got, truth, rule.options))), None
        if rule.kind == "aime":
            value = em.aime(s)
            return SampleVerdict(key, None if value is None else str(value), _ok(em.grade_aime(value, truth))), None
        if rule.kind == "math":
            boxed = em.boxed(s)
            return SampleVerdict(key, boxed, _math_verdict(boxed, truth, judge)), None
        program = self.code(s)
        if program is None or truth is None:
            return SampleVerdict(key, program, "wrong"), None  # the reference: nothing to run is wrong
        if tests is None:
            return SampleVerdict(key, program, "not_scored", NO_TESTS), None
        if not self.config.execute_code:
            return SampleVerdict(key, program, "not_scored", NOT_EXECUTED), None
        return SampleVerdict(key, program, "wrong"), _CodeJob(i, program, tests)

    def _run_code(self, jobs: list[_CodeJob]) -> None:
        if not jobs:
            return
        limits = CodeLimits(timeout_s=self.config.code_timeout_s, memory_mb=self.config.code_memory_mb)
        results = run_programs(
            [(j.code, j.tests.inputs, j.tests.outputs, j.tests.fn_name) for j in jobs],
            limits,
            workers=self.config.code_workers,
        )
        for job, result in zip(jobs, results, strict=True):
            self.verdicts[job.sample].verdict = _ok(result.passed)

    def _per_dataset(self) -> dict[str, DatasetScore]:
        per: dict[str, DatasetScore] = {}
        for v in self.verdicts:
            d = per.setdefault(v.dataset, DatasetScore(repeats=self.repeats(v.dataset)))
            if v.verdict == "not_scored":
                d.not_scored += 1
                d.not_scored_reason = d.not_scored_reason or v.reason
                continue
            d.total += 1
            d.correct += v.verdict == "correct"
            d.grading_timeouts += v.verdict == "timeout"
        for d in per.values():
            d.exact_match_percent = d.correct / d.total * 100 if d.total else 0.0
        return dict(sorted(per.items()))

    def repeats(self, dataset: str) -> int:
        return 1

    def checker_value(self, exact_match: float) -> float:
        """The figure as accuracy.txt prints it, so gates judge what MLPerf's checker reads."""
        return exact_match

    def _report(self, per: dict[str, DatasetScore], counts: list[int]) -> AccuracyReport:
        total_tokens = sum(counts)
        n = len(counts)
        return AccuracyReport(
            scorer=self.kind,
            scores_percent={"exact_match": self.checker_value(self.aggregate(per))},
            per_dataset=per,
            not_scored={name: d.not_scored for name, d in per.items() if d.not_scored},
            gen_num=n,
            gen_tok_len=total_tokens,
            # pandas' mean of an int column: a float64 sum (exact here) over the count
            tokens_per_sample=float(total_tokens) / n if n else 0.0,
        )


def _ok(passed: bool) -> Verdict:
    return "correct" if passed else "wrong"


def _sample_score(verdict: Verdict) -> float:
    return {"correct": 100.0, "wrong": 0.0, "timeout": 0.0}.get(verdict, math.nan)


def _math_verdict(parsed: str | None, truth: str | None, judge: SympyJudge) -> Verdict:
    """evaluate_math500: empty answers or truths are wrong, else PRM800K's grade_answer (stripped answer)."""
    if not parsed or not truth:
        return "wrong"
    given = parsed.strip()
    if not given:
        return "wrong"
    grade = grade_answer(given, truth, judge)
    return "timeout" if grade is Grade.TIMEOUT else _ok(grade is Grade.CORRECT)


class DeepseekR1Scorer(_ExactMatch):
    """MLPerf's deepseek-r1 evaluator: last-match extraction over the whole text; the plain mean of 100/0."""

    kind: ClassVar[str] = DEEPSEEK_R1_SCORER
    routes: ClassVar[tuple[em.Route, ...]] = em.DEEPSEEK_R1_ROUTES

    def choice(self, text: str, options: str) -> str | None:
        return em.choice_deepseek_r1(text, options)

    def code(self, text: str) -> str | None:
        return em.code_deepseek_r1(text)

    def aggregate(self, per: dict[str, DatasetScore]) -> float:
        # pandas' mean of the 100.0/0.0 column: an exact float sum of 100s over the count.
        n = sum(d.total for d in per.values())
        return float(100 * sum(d.correct for d in per.values())) / n if n else 0.0


class GptOss120bScorer(_ExactMatch):
    """MLPerf's gpt-oss-120b evaluator: final channel first; each question weighs the same across repeats."""

    kind: ClassVar[str] = GPT_OSS_SCORER
    routes: ClassVar[tuple[em.Route, ...]] = em.GPT_OSS_ROUTES
    dedupe_log: ClassVar[bool] = False
    skip_special_tokens: ClassVar[bool] = False

    def choice(self, text: str, options: str) -> str | None:
        return em.choice_gpt_oss(text, options)

    def code(self, text: str) -> str | None:
        return em.code_gpt_oss(text)

    def group(self, dataset: str) -> str:
        return dataset.lower()

    def repeats(self, dataset: str) -> int:
        return GPT_OSS_REPEATS.get(dataset, 1)

    def checker_value(self, exact_match: float) -> float:
        return float(f"{exact_match:.3f}")  # printed as 'exact_match': {:.3f}

    def aggregate(self, per: dict[str, DatasetScore]) -> float:
        # Summed in the reference's order (sorted dataset names), then final / max * 100.
        final = 0.0
        most = 0.0
        for name in sorted(per):
            d = per[name]
            final += d.correct / d.repeats
            most += d.total / d.repeats
        return final / most * 100 if most > 0 else 0.0
