"""Eval suites inside lpuperf's own workflows, as real ``lpuperf`` and ``inspect eval`` processes.

* ``validate --inspect TASK --evals-only``: sim-int8 against sim-fp32 shows the planted slippage (the
  int8 recording loses the qa category): its eval rows FAIL ``max_task_drop`` and the category is named as
  slipped, NO DEPLOY (exit 1); the figures equal a direct scoring of each precision's answers.
* ``run --eval-during TASK``: an artifact with the planted batch-dependent fault is flagged (answers
  changed under load, exit 1); the clean sim passes with the same score under load as idle; SIGTERM
  during the load stops the run and its eval child within seconds, leaving a readable results.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.evals_tasks import (
    EvalSample,
    embedded_samples,
    eval_env,
    includes_score,
    sim_answers,
    write_inspect_task,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _lpuperf(args: list[str], cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=eval_env(cwd),
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def samples() -> list[EvalSample]:
    # Ten qa samples: enough for the qa delta's 95% interval to lie below zero.
    return embedded_samples(10, ("qa",)) + embedded_samples(3, ("arithmetic",))


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory, samples: list[EvalSample]) -> Path:
    return write_inspect_task(tmp_path_factory.mktemp("task"), samples)


def _manifest(tmp: Path, faulty: bool) -> Path:
    from scenarios import resolve_dataset
    from sut import ArtifactManifest, FaultFlags, TimingModel

    m = ArtifactManifest(
        artifact_id="eval-batch-fault" if faulty else "eval-clean",
        backend="sim",
        model="lpuperf-embedded-sim",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=32,
        timing=TimingModel(prefill_base_s=0.001, prefill_per_token_s=0.000002, decode_step_s=0.004),
        target="sim-lpu",
        faults=FaultFlags(batch_dependent_output=faulty),
        eos_token_id=resolve_dataset("embedded").eos_token_id,
    )
    path = tmp / f"{m.artifact_id}.json"
    path.write_text(m.model_dump_json())
    return path


@pytest.mark.slow  # two SUTs and two Inspect processes: 20 s idle, 80 s on a busy machine (fast variant: unit)
def test_validate_inspect_shows_the_int8_category_slippage(
    tmp_path: Path, task: Path, samples: list[EvalSample]
) -> None:
    done = _lpuperf(
        ["validate", "--baseline", "sim-fp32", "--candidate", "sim-int8", "--inspect", str(task), "--evals-only",
         "--max-task-drop", "0.1", "--out", str(tmp_path / "out"), "--run-id", "v", "--no-record"],
        tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "v" / "validate.json").read_text())
    deltas = {d["category"]: d for d in report["eval_deltas"]}
    qa = [s for s in samples if s.category == "qa"]
    base = includes_score(qa, sim_answers(qa, "fp32"))
    cand = includes_score(qa, sim_answers(qa, "int8"))
    assert deltas["qa"]["baseline_score"] == pytest.approx(sum(base) / len(qa))
    assert deltas["qa"]["candidate_score"] == pytest.approx(sum(cand) / len(qa))
    assert deltas["qa"]["delta"] < -0.1
    assert "eval[lpu_mixed/qa]" in done.stdout and "VERDICT: NO DEPLOY" in done.stdout
    assert "task_drop[lpu_mixed/qa]" in done.stdout
    assert "eval categories that slipped" in done.stdout


def _eval_during(tmp: Path, task: Path, manifest: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    return _lpuperf(
        # ~500 queries: enough for LoadGen's early stopping to call the clean run VALID
        ["run", "--artifact", str(manifest), "--scenario", "Server", "--qps", "50", "--duration", "10",
         "--eval-during", str(task), "--out", str(tmp / "out"), "--run-id", run_id, "--no-record"],
        tmp,
    )  # fmt: skip


def _verdict(tmp: Path, run_id: str) -> dict[str, object]:
    found = list((tmp / "out" / run_id).rglob("eval_under_load.json"))
    assert len(found) == 1, found
    return dict(json.loads(found[0].read_text()))


@pytest.mark.slow  # ~30 s on a busy machine (fast variants: tests/unit/evals, tests/unit/sut/test_sim_batch_fault.py)
def test_eval_during_flags_a_batch_dependent_fault(tmp_path: Path, task: Path) -> None:
    done = _eval_during(tmp_path, task, _manifest(tmp_path, faulty=True), "faulty")
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    verdict = _verdict(tmp_path, "faulty")
    assert verdict["passed"] is False
    assert verdict["n_under_load"] and verdict["changed_answers"]
    assert "answers changed under load" in done.stdout and ": FAIL" in done.stdout
    # The load's queries are LoadGen's alone: the eval requests are not among them (nor in its percentiles).
    results_path = next((tmp_path / "out" / "faulty").rglob("results.json"))
    results = json.loads(results_path.read_text())
    detail = (results_path.parent / "mlperf_log_detail.txt").read_text()
    generated = int(detail.split('"key": "generated_query_count", "value": ')[1].split("}")[0].split(",")[0])
    assert results["n_queries"] == generated


@pytest.mark.slow  # the clean twin of the test above: ~35 s on a busy machine
def test_eval_during_passes_on_the_clean_sim(tmp_path: Path, task: Path) -> None:
    done = _eval_during(tmp_path, task, _manifest(tmp_path, faulty=False), "clean")
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    verdict = _verdict(tmp_path, "clean")
    assert verdict["passed"] is True and verdict["changed_answers"] == 0
    idle, loaded = verdict["idle"], verdict["under_load"]
    assert idle["categories"][0]["score"] == loaded["categories"][0]["score"]  # type: ignore[index]


@pytest.mark.slow  # two SUTs and two lm-eval processes: ~25 s idle, a minute on a busy machine
def test_validate_lm_eval_shows_the_int8_slippage(tmp_path: Path, samples: list[EvalSample]) -> None:
    from tests.evals_tasks import write_lm_eval_tasks

    qa = [s for s in samples if s.category == "qa"]
    include = write_lm_eval_tasks(tmp_path / "tasks", qa)
    done = _lpuperf(
        ["validate", "--baseline", "sim-instant", "--candidate", "sim-int8", "--lm-eval", "lpu_gen",
         "--lm-eval-include", str(include), "--evals-only", "--max-task-drop", "0.1", "--out", str(tmp_path / "out"),
         "--run-id", "v", "--no-record"],
        tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "v" / "validate.json").read_text())
    overall = report["eval_deltas"][0]
    base = [a.split("\n\n")[0].strip() == s.target for s, a in zip(qa, sim_answers(qa, "fp32"), strict=True)]
    cand = [a.split("\n\n")[0].strip() == s.target for s, a in zip(qa, sim_answers(qa, "int8"), strict=True)]
    assert overall["baseline_score"] == pytest.approx(sum(base) / len(qa))
    assert overall["candidate_score"] == pytest.approx(sum(cand) / len(qa))
    assert "eval[lpu_gen]" in done.stdout and "VERDICT: NO DEPLOY" in done.stdout


def _eval_children(task: Path) -> list[int]:
    """Pids of running `inspect eval` processes of ``task`` (from /proc), the idle pass's excluded."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "inspect" in cmd and " eval " in cmd and task.name in cmd and "--max-connections" not in cmd:
            pids.append(int(proc.name))
    return pids


def test_eval_during_stops_within_seconds_on_sigterm_leaving_a_readable_run(tmp_path: Path, task: Path) -> None:
    import signal
    import time

    env = eval_env(tmp_path)
    argv = [sys.executable, "-m", "cli", "run", "--artifact", str(_manifest(tmp_path, faulty=False)), "--qps", "20",
            "--duration", "60", "--eval-during", str(task), "--out", str(tmp_path / "out"), "--run-id", "stop",
            "--no-record"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _eval_children(task):  # the eval under load has started: the load is running
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        proc.communicate(timeout=30)
        assert time.monotonic() - stopped_at < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 143
    results = next((tmp_path / "out" / "stop").rglob("results.json"))
    assert json.loads(results.read_text())["state"] != "complete"
    time.sleep(0.5)
    assert not _eval_children(task)
