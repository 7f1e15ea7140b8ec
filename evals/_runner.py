"""Running an Inspect task against a SUT from lpuperf's own workflows: a real ``inspect eval`` process.

A child process, not Inspect in this process: Inspect owns its event loop, display and signal handling,
and a workflow that is also driving LoadGen keeps neither. The child gets ``--model lpuperf/ADDRESS``
with the run's TLS and token settings as model arguments, writes a JSON log into the given directory,
and lpuperf reads the scores from that log (evals/_scores.py). A missing Inspect is one line naming the
install command; a failed eval is one line with the child's last error line.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from common import UsageError
from evals._scores import TaskScore, read_inspect_log
from loadgen_harness import TransportSecurity

__all__ = ["INSPECT_INSTALL", "InspectRun", "inspect_available", "run_inspect"]

INSPECT_INSTALL = "pip install 'lpuperf[inspect]'"
_DEFAULT_TIMEOUT_S = 1800.0


class InspectRun(BaseModel):
    """One ``inspect eval`` of a task against a target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(min_length=1, description="what `inspect eval` takes: file.py, file.py@task, package/task")
    task_args: dict[str, str] = Field(default_factory=dict, description="-T key=value")
    max_connections: int | None = Field(default=None, gt=0, description="requests in flight; 1 = one at a time")
    limit: int | None = Field(default=None, gt=0, description="first N samples only")
    tokenizer: str | None = None
    timeout_s: float = Field(default=_DEFAULT_TIMEOUT_S, gt=0)


def inspect_available() -> bool:
    return importlib.util.find_spec("inspect_ai") is not None


def _inspect_command() -> list[str]:
    # The console script beside this interpreter, so the child sees the same environment and entry points.
    script = Path(sys.executable).with_name("inspect")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "inspect_ai"]


def _model_args(transport: TransportSecurity | None, tokenizer: str | None) -> list[str]:
    args: list[str] = []
    if transport is not None:
        for key, value in transport.model_dump(exclude_none=True).items():
            args += ["-M", f"{key}={value}"]
    if tokenizer:
        args += ["-M", f"tokenizer={tokenizer}"]
    return args


def _task_and_cwd(task: str) -> tuple[str, Path | None]:
    """Inspect resolves task files relative to its working directory only: a task file given by any path
    runs from its own directory, named by its file name (``@task`` kept)."""
    path, sep, name = task.partition("@")
    file = Path(path)
    if file.suffix == ".py" and file.is_file():
        return file.name + sep + name, file.resolve().parent
    return task, None


def _last_error_line(text: str) -> str:
    lines = [ln.strip(" │|") for ln in text.splitlines() if ln.strip(" │|")]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line
    return lines[-1] if lines else "no output"


def run_inspect(
    run: InspectRun,
    target: str,
    log_dir: Path,
    transport: TransportSecurity | None = None,
    label: str = "",
    started: Callable[[subprocess.Popen[str]], None] | None = None,
) -> TaskScore:
    """Evaluate ``run.task`` against ``target`` (``HOST:PORT``, a fleet, ``embedded:ARTIFACT``).

    ``started`` gets the child as soon as it runs, so a caller on another thread can stop it (Ctrl-C).
    """
    if not inspect_available():
        raise UsageError(f"--inspect: needs Inspect AI: {INSPECT_INSTALL}")
    log_dir = log_dir.resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    before = set(log_dir.glob("*.json"))
    task, cwd = _task_and_cwd(run.task)
    cmd = [
        *_inspect_command(),
        "eval",
        task,
        "--model",
        f"lpuperf/{target}",
        "--log-dir",
        str(log_dir),
        "--log-format",
        "json",
        "--display",
        "none",
        *_model_args(transport, run.tokenizer),
    ]
    for key, value in sorted(run.task_args.items()):
        cmd += ["-T", f"{key}={value}"]
    if run.max_connections is not None:
        cmd += ["--max-connections", str(run.max_connections)]
    if run.limit is not None:
        cmd += ["--limit", str(run.limit)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd) as child:
        if started is not None:
            started(child)
        try:
            stdout, stderr = child.communicate(timeout=run.timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            raise UsageError(f"--inspect {run.task}: no result within {run.timeout_s:.0f} s") from None
        except BaseException:  # Ctrl-C: the eval stops with us
            child.kill()
            raise
    logs = sorted(set(log_dir.glob("*.json")) - before, key=lambda p: p.stat().st_mtime)
    if child.returncode != 0 or not logs:
        why = _last_error_line(stderr + "\n" + stdout)
        raise UsageError(f"--inspect {run.task}{f' ({label})' if label else ''}: inspect eval failed: {why}")
    return read_inspect_log(logs[-1], target)
