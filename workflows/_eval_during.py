"""``lpuperf run ... --eval-during TASK``: an Inspect task's requests interleaved with the run's load.

Data flow, on one SUT (spawned here, or the running one ``--sut`` names):

1. idle: the task runs alone, one request at a time (``--max-connections 1``), so every eval request meets
   a batch of one;
2. under load: the task runs again in an ``inspect eval`` child started next to the load run, with Inspect's
   own concurrency, while the scenario's queries keep the SUT's batches full;
3. the two are paired sample by sample: score under load next to the idle score, the per-category deltas
   with their intervals, and how many answers changed.

The eval requests travel on the child's own gRPC channel: they are never LoadGen queries, so they are not
in the load's records or percentiles (they do share the SUT's batches: that is the point). A request
counts as under load when Inspect started and finished it inside the load run's wall-clock span.

The check: a deterministic artifact gives the same answer whatever the batch, so any changed answer or any
category whose delta interval lies below zero fails it. A check with no eval request under load fails for
want of evidence (lengthen ``--duration``). The result is ``eval_under_load.json`` beside results.json.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common import UsageError, first_error_line, write_atomic
from evals import ALL_CATEGORIES, InspectRun, ScoreDelta, TaskScore, compare_scores, run_inspect
from loadgen_harness import RunConfig, RunResult, SutTarget, launch_sut, run_benchmark

__all__ = ["EVAL_UNDER_LOAD_FILE", "EvalUnderLoad", "judge_under_load", "run_with_eval_during"]

EVAL_UNDER_LOAD_FILE = "eval_under_load.json"
_JOIN_TIMEOUT_S = 60.0  # after the load ends, how long the eval child may still take


class EvalUnderLoad(BaseModel):
    """An eval's score under load next to its idle score, and whether the artifact answered alike."""

    model_config = ConfigDict(extra="forbid")

    task: str
    idle: TaskScore
    under_load: TaskScore
    deltas: list[ScoreDelta]
    n_samples: int = Field(ge=0)
    n_under_load: int = Field(ge=0)  # eval requests started and finished inside the load's span
    changed_answers: int = Field(ge=0)
    load_start_unix_s: float
    load_end_unix_s: float
    passed: bool
    line: str


def judge_under_load(idle: TaskScore, loaded: TaskScore, window: tuple[float, float]) -> EvalUnderLoad:
    """Pair the two runs and decide (see the module docstring)."""
    deltas = compare_scores(idle, loaded)
    start, end = window
    inside = [
        s
        for s in loaded.samples
        if s.started_unix_s is not None
        and s.completed_unix_s is not None
        and start <= s.started_unix_s
        and s.completed_unix_s <= end
    ]
    overall = deltas[0]
    slipped = [d for d in deltas if d.ci_high < 0]
    if not inside:
        passed, why = False, "no eval request ran under load (lengthen --duration)"
    elif overall.changed_answers or slipped:
        passed = False
        why = f"{overall.changed_answers} of {overall.n_samples} answers changed under load" + (
            f"; slipped: {', '.join(d.task if d.category == ALL_CATEGORIES else d.category for d in slipped)}"
            if slipped
            else ""
        )
    else:
        passed, why = True, "every answer under load equals its idle answer"
    line = (
        f"eval {idle.task} under load {loaded.overall.score:.3f} vs idle {idle.overall.score:.3f} "
        f"(delta {overall.delta:+.3f}, 95% CI [{overall.ci_low:+.3f}, {overall.ci_high:+.3f}]; "
        f"{len(inside)} of {len(loaded.samples)} requests under load): {'PASS' if passed else 'FAIL'}, {why}"
    )
    return EvalUnderLoad(
        task=idle.task,
        idle=idle,
        under_load=loaded,
        deltas=deltas,
        n_samples=len(loaded.samples),
        n_under_load=len(inside),
        changed_answers=overall.changed_answers,
        load_start_unix_s=start,
        load_end_unix_s=end,
        passed=passed,
        line=line,
    )


def _sut_target(cfg: RunConfig) -> SutTarget:
    if cfg.http_endpoint is not None:
        raise UsageError("--eval-during: needs a gRPC SUT; drop --transport openai-http")
    try:
        return SutTarget(
            address=cfg.sut,
            backend=cfg.backend,
            dataset=cfg.dataset,
            transport=cfg.transport,
            replicas=cfg.replicas,
            allow_mixed=cfg.allow_mixed,
        )
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "sut")) from None


def run_with_eval_during(
    cfg: RunConfig,
    run: InspectRun,
    echo: Callable[[str], None] = print,
    on_progress: Callable[..., Any] | None = None,
) -> tuple[RunResult, EvalUnderLoad]:
    """The load run with ``run``'s eval under it, after the same eval idle; writes eval_under_load.json."""
    target = _sut_target(cfg)
    if cfg.run_id is None:  # the eval logs and the run share one run directory
        cfg = cfg.model_copy(update={"run_id": time.strftime("run-%Y%m%d-%H%M%S")})
    out = Path(cfg.out_dir) / str(cfg.run_id or "run") / "evals"
    with launch_sut(target) as running:
        transport = None if running.embedded else cfg.transport
        echo(f"eval {run.task}: idle, one request at a time")
        idle = run_inspect(
            run.model_copy(update={"max_connections": 1}), running.address, out / "idle", transport, "idle"
        )
        loaded: list[TaskScore] = []
        failed: list[BaseException] = []
        children: list[subprocess.Popen[str]] = []

        def under_load() -> None:
            try:
                loaded.append(
                    run_inspect(run, running.address, out / "under_load", transport, "under load", children.append)
                )
            except BaseException as exc:  # reported on the main thread, after the load run
                failed.append(exc)

        load_cfg = cfg.model_copy(update={"sut": running.address, "backend": {}, "replicas": 1, "allow_mixed": True})
        if running.embedded:
            load_cfg = load_cfg.model_copy(update={"transport": type(cfg.transport)()})
        worker = threading.Thread(target=under_load, name="eval-under-load", daemon=True)
        echo(f"eval {run.task}: under load")
        issued_from = [time.time()]  # moved to when the run began issuing, at its first progress tick

        def ticked(elapsed_s: float, completed: int, rate: float) -> None:
            if len(issued_from) == 1:
                issued_from.append(time.time() - elapsed_s)
            if on_progress is not None:
                on_progress(elapsed_s, completed, rate)

        worker.start()
        try:
            result = run_benchmark(load_cfg, on_progress=ticked)
        except BaseException:  # interrupted or failed: the eval child stops now, not after its last sample
            for child in children:
                child.kill()
            worker.join(_JOIN_TIMEOUT_S)
            raise
        end = time.time()
        worker.join(_JOIN_TIMEOUT_S)
        start = issued_from[-1]
    if failed:
        raise failed[0]
    if not loaded:
        raise UsageError(f"--eval-during {run.task}: the eval under load did not finish within {_JOIN_TIMEOUT_S:.0f} s")
    verdict = judge_under_load(idle, loaded[0], (start, end))
    where = Path(result.log_dir) if result.log_dir else out
    write_atomic(where / EVAL_UNDER_LOAD_FILE, verdict.model_dump_json(indent=2) + "\n")
    return result, verdict
