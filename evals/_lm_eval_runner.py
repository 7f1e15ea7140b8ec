"""Running an lm-eval task against a SUT from lpuperf's workflows: a real ``lpuperf evals lm-eval`` child.

The child writes its per-sample log (``--log_samples``) into the given directory; each ``samples_<task>_*``
file is one (sub)task, read back as one category of a :class:`TaskScore` named after the requested task:
a sample's score is the first metric the task lists (``exact_match``: 0 or 1), its answer the filtered
response. So ``--lm-eval mmlu_pro`` gets one category per subject, as an Inspect task's metadata would.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from common import UsageError
from evals._scores import SampleScore, TaskScore, categories_of
from loadgen_harness import TransportSecurity

__all__ = ["LM_EVAL_INSTALL", "LmEvalRun", "read_lm_eval_samples", "run_lm_eval"]

LM_EVAL_INSTALL = "pip install 'lpuperf[lm-eval]'"
_SAMPLES = re.compile(r"^samples_(?P<task>.+)_\d{4}-\d{2}-\d{2}T[\d.-]+\.jsonl$")


class LmEvalRun(BaseModel):
    """One lm-eval run of a task (or group) against a target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(min_length=1, description="an lm-eval task or group name")
    include_path: Path | None = Field(default=None, description="a folder of task YAML files (--include_path)")
    limit: int | None = Field(default=None, gt=0)
    tokenizer: str | None = None
    timeout_s: float = Field(default=1800.0, gt=0)


def _model_args(target: str, transport: TransportSecurity | None, tokenizer: str | None) -> str:
    # lm-eval splits model_args on commas: a fleet's address list travels joined by '+'.
    parts = [f"target={target.replace(',', '+')}"]
    if transport is not None:
        parts += [f"{k}={v}" for k, v in transport.model_dump(exclude_none=True).items()]
    if tokenizer:
        parts.append(f"tokenizer={tokenizer}")
    return ",".join(parts)


def read_lm_eval_samples(out_dir: Path, task: str, target: str) -> TaskScore:
    """Every ``samples_*.jsonl`` under ``out_dir`` as one TaskScore (a category per subtask)."""
    samples: list[SampleScore] = []
    for path in sorted(out_dir.rglob("samples_*.jsonl")):
        m = _SAMPLES.match(path.name)
        if m is None:
            continue
        sub = m.group("task")
        for n, line in enumerate(path.read_text().splitlines(), 1):
            try:
                row = json.loads(line)
                metric = row["metrics"][0]
                value = float(row[metric])
            except (ValueError, KeyError, IndexError, TypeError):
                raise UsageError(f"{path}: line {n}: expected an lm-eval sample with its metrics") from None
            answer = row.get("filtered_resps") or [""]
            samples.append(
                SampleScore(
                    sample_id=f"{sub}:{row.get('doc_id')}",
                    category=sub,
                    score=min(1.0, max(0.0, value)),
                    answer=str(answer[0]),
                )
            )
    if not samples:
        raise UsageError(f"{out_dir}: lm-eval wrote no samples (expected samples_<task>_*.jsonl)")
    return TaskScore(task=task, target=target, scorer="lm-eval", samples=samples, categories=categories_of(samples))


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "error" in line.lower():
            return line
    return lines[-1] if lines else "no output"


def run_lm_eval(
    run: LmEvalRun, target: str, out_dir: Path, transport: TransportSecurity | None = None, label: str = ""
) -> TaskScore:
    """Evaluate ``run.task`` against ``target`` through ``lpuperf evals lm-eval``; its samples read back."""
    if importlib.util.find_spec("lm_eval") is None:
        raise UsageError(f"--lm-eval: needs lm-eval: {LM_EVAL_INSTALL}")
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "cli", "evals", "lm-eval", "--model", "lpuperf", "--tasks", run.task]
    cmd += ["--model_args", _model_args(target, transport, run.tokenizer), "--output_path", str(out_dir)]
    cmd += ["--log_samples"]
    if run.include_path is not None:
        cmd += ["--include_path", str(run.include_path.resolve())]
    if run.limit is not None:
        cmd += ["--limit", str(run.limit)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=run.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise UsageError(f"--lm-eval {run.task}: no result within {run.timeout_s:.0f} s") from None
    if done.returncode != 0:
        where = f" ({label})" if label else ""
        raise UsageError(f"--lm-eval {run.task}{where}: lm-eval failed: {_last_line(done.stderr + done.stdout)}")
    return read_lm_eval_samples(out_dir, run.task, target)
