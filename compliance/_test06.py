"""TEST06 verification with MLPerf's exact semantics, plus the per-sample detail MLPerf omits.

The three checks read the sampled accuracy log of a performance run made with TEST06's audit
settings, as int32 token ids:

* first token: ``token_data`` must agree with ``data`` wherever both have tokens (MLPerf zips the
  two arrays, so a longer ``token_data`` is only compared over ``data``'s length); skipped in Offline.
* EOS: walking back from the last token while the tokens are EOS, two EOS fail. Like MLPerf the walk
  stops before index 0, so an EOS in the middle of the output passes: the strict EOS check catches it.
* length: ``len(data) == token_count``.

A sample whose fields are missing or undecodable fails the check that needs them, as MLPerf's script
fails a check that raises. ``verify_accuracy.txt`` holds MLPerf's lines byte for byte; the JSON report
(:class:`Test06Report`) names every failing sample and the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, Field

from compliance._accuracy_log import LoggedSample
from compliance._checks import CheckResult, SampleFailure, make_result, skipped

# MLPerf's compliance/TEST06/audit.config, key for key. LoadGen reads ``model.scenario.key`` with
# ``*`` as a wildcard; mode 2 is PerformanceOnly.
AUDIT_CONFIG_TEXT = """\
# TEST06 audit settings (MLPerf compliance). Format: model.scenario.key = value; '*' matches any.
# mode: 0 = submission, 1 = accuracy, 2 = performance, 3 = find peak performance
*.*.mode = 2
*.*.accuracy_log_rng_seed = 720381539243781796
*.*.accuracy_log_sampling_target = 100
*.*.min_query_count = 100
*.*.min_duration = 0
# TEST06 turns equal-issue mode off
*.*.sample_concatenate_permutation = 0
"""

VERIFY_FILE = "verify_accuracy.txt"
REPORT_FILE = "test06_report.json"
FIRST_TOKEN = "first_token"
EOS = "eos"
SAMPLE_LENGTH = "sample_length"

_DESCRIPTIONS = {
    FIRST_TOKEN: "MLPerf first-token check: token_data is a prefix of data",
    EOS: "MLPerf EOS check: at most one trailing EOS token",
    SAMPLE_LENGTH: "MLPerf sample length check: len(data) == token_count",
}


def check_first_token(samples: list[LoggedSample]) -> list[SampleFailure]:
    out: list[SampleFailure] = []
    for s in samples:
        if s.data is None or s.token_data is None:
            out.append(SampleFailure(qsl_idx=s.qsl_idx, seq_id=s.seq_id, reason=s.data_error or s.token_data_error))
            continue
        n = min(len(s.data), len(s.token_data))
        diff = [i for i in range(n) if s.data[i] != s.token_data[i]]
        if diff:
            i = diff[0]
            out.append(
                SampleFailure(
                    qsl_idx=s.qsl_idx,
                    seq_id=s.seq_id,
                    reason=f"token_data[{i}] = {int(s.token_data[i])} but data[{i}] = {int(s.data[i])}",
                )
            )
    return out


def trailing_eos_run(data: list[int], eos_token_id: int) -> int:
    """Trailing EOS tokens as MLPerf counts them: the walk back stops before index 0."""
    n, i = 0, len(data) - 1
    while i > 0 and data[i] == eos_token_id:
        n += 1
        i -= 1
    return n


def check_eos(samples: list[LoggedSample], eos_token_id: int) -> list[SampleFailure]:
    out: list[SampleFailure] = []
    for s in samples:
        if s.data is None:
            out.append(SampleFailure(qsl_idx=s.qsl_idx, seq_id=s.seq_id, reason=s.data_error))
            continue
        run = trailing_eos_run(s.data.tolist(), eos_token_id)
        if run >= 2:
            out.append(
                SampleFailure(
                    qsl_idx=s.qsl_idx,
                    seq_id=s.seq_id,
                    reason=f"output ends with {run} EOS tokens (id {eos_token_id}); at most one is allowed",
                )
            )
    return out


def check_sample_length(samples: list[LoggedSample]) -> list[SampleFailure]:
    out: list[SampleFailure] = []
    for s in samples:
        if s.data is None or s.token_count is None:
            out.append(SampleFailure(qsl_idx=s.qsl_idx, seq_id=s.seq_id, reason=s.data_error or s.token_count_error))
            continue
        if len(s.data) != s.token_count:
            out.append(
                SampleFailure(
                    qsl_idx=s.qsl_idx,
                    seq_id=s.seq_id,
                    reason=f"data has {len(s.data)} tokens but token_count is {s.token_count}",
                )
            )
    return out


class Test06Report(BaseModel):
    """TEST06's verdict: MLPerf's lines plus which samples failed which check and why."""

    scenario: str
    accuracy_log: str
    eos_token_id: int
    n_samples: int = Field(ge=0)
    checks: list[CheckResult]
    verify_lines: list[str] = Field(description="verify_accuracy.txt, line by line, as MLPerf writes it")
    mlperf_passed: bool = Field(description="what MLPerf's script concludes")
    passed: bool = Field(description="mlperf_passed, and the log holds at least one sample")
    message: str

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def verify_text(self) -> str:
        return "".join(line + "\n" for line in self.verify_lines)


def verify_test06(
    samples: list[LoggedSample], scenario: str, eos_token_id: int, accuracy_log: str = ""
) -> Test06Report:
    """Run MLPerf's TEST06 checks over decoded accuracy-log samples."""
    offline = scenario == "Offline"
    n = len(samples)
    if offline:
        first = skipped(FIRST_TOKEN, _DESCRIPTIONS[FIRST_TOKEN], "Offline has no first-token data")
    else:
        first = make_result(FIRST_TOKEN, _DESCRIPTIONS[FIRST_TOKEN], n, check_first_token(samples))
    eos = make_result(EOS, _DESCRIPTIONS[EOS], n, check_eos(samples, eos_token_id))
    length = make_result(SAMPLE_LENGTH, _DESCRIPTIONS[SAMPLE_LENGTH], n, check_sample_length(samples))
    mlperf_passed = first.passed and eos.passed and length.passed
    lines = [
        "First token check pass: " + ("Skipped" if offline else str(first.passed)),
        f"EOS check pass: {eos.passed}",
        f"Sample length check pass: {length.passed}",
        "TEST06 verification complete" if mlperf_passed else "TEST06 verification failed",
    ]
    checks = [first, eos, length]
    if n == 0:
        message = "TEST06 FAIL: accuracy log has no samples: was the run made with TEST06's audit.config?"
    elif mlperf_passed:
        message = f"TEST06 PASS: {n} sampled outputs pass the first-token, EOS and length checks"
    else:
        message = "TEST06 FAIL: " + "; ".join(c.line() for c in checks if not c.passed)
    return Test06Report(
        scenario=scenario,
        accuracy_log=accuracy_log,
        eos_token_id=eos_token_id,
        n_samples=n,
        checks=checks,
        verify_lines=lines,
        mlperf_passed=mlperf_passed,
        passed=mlperf_passed and n > 0,
        message=message,
    )


def write_test06_outputs(report: Test06Report, accuracy_log: Path, test06_dir: Path) -> Path:
    """Lay out ``TEST06/{verify_accuracy.txt, accuracy/mlperf_log_accuracy.json, test06_report.json}``."""
    from common import atomic_path, write_atomic

    test06_dir.mkdir(parents=True, exist_ok=True)
    acc_dir = test06_dir / "accuracy"
    acc_dir.mkdir(exist_ok=True)
    dest = acc_dir / "mlperf_log_accuracy.json"
    if accuracy_log.resolve() != dest.resolve():
        with atomic_path(dest) as tmp:
            shutil.copyfile(accuracy_log, tmp)
    write_atomic(test06_dir / VERIFY_FILE, report.verify_text)
    write_atomic(test06_dir / REPORT_FILE, report.model_dump_json(indent=2) + "\n")
    return test06_dir
