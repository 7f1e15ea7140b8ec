"""LiveCodeBench-style execution of generated code, opt-in, each program in a sandboxed subprocess.

MLPerf's evaluators run LiveCodeBench's tests on the extracted program in a forked process with a
per-test alarm and no other limit (no memory cap, the network reachable). lpuperf runs them only when
asked (``lpuperf accuracy --execute-code``), and each program in its own child (``_code_runner.py``):

* a new network namespace (only a downed loopback: nothing can be reached) and PID namespace (every
  process the program starts dies with it), through util-linux ``unshare``; where that is refused,
  nothing is executed and one line says why;
* as root, the program runs as ``nobody`` (``setpriv``: no new privileges, only the capability to read
  files, since the interpreter may live under /root), so it can write nothing but its working directory;
  not as root, it runs as the user in a user namespace;
* resource limits set by the child on itself before the program runs: CPU seconds, address space,
  file size, processes, no core dumps;
* a temporary working directory, removed afterwards; a wall-clock limit after which the whole process
  group is killed.

The limits follow LiveCodeBench's: ``timeout_s`` per test (60 s, as MLPerf runs it) and
``(timeout_s + 1) * n_tests + 5`` seconds for the program, wall clock and CPU alike. A program killed
or crashed before reporting fails every test (-1), as in LiveCodeBench.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from accuracy._log import AccuracyLogError

_RUNNER = Path(__file__).with_name("_code_runner.py")
_NOBODY = 65534
_NOT_REPORTED = -1


class CodeExecError(AccuracyLogError):
    """Code execution was asked for but cannot be sandboxed here; one line saying why."""


class CodeLimits(BaseModel):
    """Per-program limits; the defaults are MLPerf's LiveCodeBench settings plus the memory cap it lacks."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=60.0, gt=0, description="per test (LiveCodeBench's timeout)")
    memory_mb: int = Field(default=4096, ge=64, description="address-space limit of the program")
    file_mb: int = Field(default=64, ge=1, description="largest file the program may write")

    def program_s(self, n_tests: int) -> float:
        """LiveCodeBench's limit for one program: (timeout + 1) x tests + 5 s."""
        return (self.timeout_s + 1) * n_tests + 5


class ProgramResult(BaseModel):
    """One program's test results: True or LiveCodeBench's codes (-1 not reported, -2 wrong, -3 TLE, -4 error)."""

    passed: bool
    results: list[bool | int]
    status: Literal["ran", "killed", "no_report"]


_PREFIX_LOCK = threading.Lock()
_PREFIX: list[str] | None = None
_PROBLEM: str | None = None


def _probe(prefix: list[str]) -> str | None:
    try:
        done = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(prefix)} failed ({exc.__class__.__name__})"
    if done.returncode == 0:
        return None
    detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return f"{Path(prefix[0]).name} {' '.join(prefix[1:-1])}: {detail}"


def _candidates() -> tuple[list[list[str]], str | None]:
    """Prefixes to try, or why there is none. Root runs the program as ``nobody`` (setpriv), keeping only
    the right to read files (the interpreter may live under /root) and no way back to root."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return [], "util-linux 'unshare' is not installed"
    base = [unshare, "--net", "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        return [[*base, "--map-root-user", "--"]], None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return [], "util-linux 'setpriv' is not installed (needed to run the code as nobody, not root)"
    drop = [
        setpriv,
        f"--reuid={_NOBODY}",
        f"--regid={_NOBODY}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        "--",
    ]
    return [[*base, "--", *drop]], None


def sandbox_prefix() -> list[str]:
    """The command prefix that isolates a program (network and PID namespaces); CodeExecError when none works."""
    global _PREFIX, _PROBLEM
    with _PREFIX_LOCK:
        if _PREFIX is None and _PROBLEM is None:
            tries, _PROBLEM = _candidates()
            problems = []
            for prefix in tries:
                why = _probe(prefix)
                if why is None:
                    _PREFIX = prefix
                    break
                problems.append(why)
            if _PREFIX is None and problems:
                _PROBLEM = "; ".join(problems)
        if _PREFIX is None:
            raise CodeExecError(
                f"--execute-code: refusing to run generated code without network isolation ({_PROBLEM}); "
                "run without --execute-code to report code samples as not scored"
            )
        return _PREFIX


def _workdir() -> tempfile.TemporaryDirectory[str]:
    tmp = tempfile.TemporaryDirectory(prefix="lpuperf-code-")
    if os.geteuid() == 0:  # the program runs as nobody: its working directory must be its own
        os.chown(tmp.name, _NOBODY, _NOBODY)
    os.chmod(tmp.name, 0o700)
    return tmp


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()


def run_program(
    code: str, inputs: Sequence[str], outputs: Sequence[str], fn_name: str | None, limits: CodeLimits
) -> ProgramResult:
    """Run ``code`` against its tests in the sandbox; never raises for anything the program does."""
    prefix = sandbox_prefix()
    n = len(inputs)
    wall_s = limits.program_s(n)
    job = {
        "code": code,
        "inputs": list(inputs),
        "outputs": list(outputs),
        "fn_name": fn_name,
        "timeout_s": limits.timeout_s,
        "cpu_s": math.ceil(wall_s),
        "memory_bytes": limits.memory_mb << 20,
        "file_bytes": limits.file_mb << 20,
    }
    with _workdir() as tmp:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-I", str(_RUNNER)],
            cwd=tmp,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # One BLAS thread: numpy's buffers per core would otherwise eat the address-space limit on big hosts.
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": tmp,
                "LANG": "C.UTF-8",
                "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1",
            },
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(json.dumps(job).encode(), timeout=wall_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return ProgramResult(passed=False, results=[_NOT_REPORTED] * n, status="killed")
        finally:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
    return _parse_report(out, n)


def _parse_report(out: bytes, n: int) -> ProgramResult:
    lines = out.decode("utf-8", errors="replace").strip().splitlines()
    try:
        results = json.loads(lines[-1])["results"]
        if not isinstance(results, list) or not all(isinstance(r, (bool, int)) for r in results):
            raise ValueError("results are not bools and ints")
    except (IndexError, ValueError, KeyError, TypeError):
        return ProgramResult(passed=False, results=[_NOT_REPORTED] * n, status="no_report")
    # LiveCodeBench's pass: every recorded test result is True (> 0); a run stops at its first failure.
    return ProgramResult(passed=all(r > 0 for r in results), results=results, status="ran")


def run_programs(
    jobs: Sequence[tuple[str, Sequence[str], Sequence[str], str | None]], limits: CodeLimits, workers: int = 1
) -> list[ProgramResult]:
    """Each ``(code, inputs, outputs, fn_name)`` in its own sandbox, ``workers`` at a time (0 = all cores)."""
    if not jobs:
        return []
    sandbox_prefix()  # refuse once, before starting anything
    n_workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=max(1, min(n_workers, len(jobs)))) as pool:
        return list(pool.map(lambda job: run_program(job[0], job[1], job[2], job[3], limits), jobs))
