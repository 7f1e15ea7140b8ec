"""TEST07's accuracy script from lpuperf's own scorers, and the compliance steps a benchmark needs.

MLPerf's TEST07 runs an accuracy script over the performance-mode accuracy log and parses the score from
what it prints. lpuperf's script is the benchmark's own scorer (``BenchmarkProfile.scorer``, the accuracy
registry's entry): it prints the score lines of ``accuracy.txt`` (the format MLPerf's checker parses),
without the ``hash=`` line, which belongs to a submission's accuracy directory. compliance cannot import
accuracy (they are sibling layers), so the adapter lives here.
"""

from __future__ import annotations

from pathlib import Path

from accuracy import AccuracyReport, format_accuracy_txt, score_accuracy_log, scorers
from scenarios import get_benchmark, requires_test06, requires_test07, requires_test09


def accuracy_output(report: AccuracyReport) -> str:
    """What the scorer prints for TEST07: accuracy.txt's lines but the hash."""
    lines = format_accuracy_txt(report).splitlines()
    return "".join(line + "\n" for line in lines if not line.startswith("hash="))


class ScorerScript:
    """TEST07's accuracy script: the benchmark's scorer over an accuracy log (compliance.AccuracyScript)."""

    def __init__(
        self, benchmark: str, dataset: str | None = None, tokenizer: str | Path | None = None, kind: str | None = None
    ) -> None:
        profile = get_benchmark(benchmark)
        self.benchmark, self.dataset, self.tokenizer = profile.name, dataset, tokenizer
        self.kind = kind or profile.scorer
        if self.kind not in scorers.names():  # before a pass is made whose log could not be scored
            raise ValueError(f"scorer: unknown kind '{self.kind}'; expected one of: {', '.join(scorers.names())}")

    @property
    def name(self) -> str:
        return f"lpuperf scorer '{self.kind}' ({self.benchmark})"

    def __call__(self, accuracy_log: Path) -> str:
        outcome = score_accuracy_log(
            accuracy_log,
            dataset_spec=self.dataset,
            benchmark=self.benchmark,
            tokenizer=self.tokenizer,
            levels=(),
            fidelity=False,
            scorer={"kind": self.kind},
        )
        return accuracy_output(outcome.report)


def required_checks(benchmark: str) -> tuple[str, ...]:
    """The MLPerf compliance tests ``benchmark``'s submission carries, in the order a session runs them."""
    checks = (
        ("TEST06", requires_test06(benchmark)),
        ("TEST07", requires_test07(benchmark)),
        ("TEST09", requires_test09(benchmark)),
    )
    return tuple(name for name, needed in checks if needed)
