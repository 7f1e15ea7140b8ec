"""Runs one generated program against its tests, as LiveCodeBench's ``testing_util.run_test`` does.

This is the child side of :mod:`accuracy._code_exec`: it is started by path (it imports nothing from the
project) inside a fresh network and PID namespace, reads one JSON job on stdin and writes one JSON line
``{"results": [...]}`` on the stdout it was given. Before the program runs it caps its own CPU time,
address space, file size, processes and core dumps (``resource.setrlimit``), works in the temporary
directory it was started in and disables the destructive functions LiveCodeBench's
``reliability_guard`` disables.

Test semantics are LiveCodeBench's (``lcb_runner/evaluation/testing_util.py`` at b1e7cab4):

* call-based (``fn_name`` set): the standard import prelude is prepended, the code executed as a module
  (a ``class Solution`` is instantiated), each input is newline-separated JSON arguments and the
  result, a tuple read as a list, must equal the JSON output;
* stdin/stdout: a trailing ``if __name__ == '__main__':`` is unwrapped, every statement but the imports
  goes into one function, which runs with stdin served from the input (``read``/``readline``/
  ``readlines``/``buffer``/``open``) and stdout captured; outputs match line by line after stripping,
  as strings or as lists of ``Decimal``.

Per test: ``True``, or -2 wrong answer, -3 time limit, -4 runtime error; the run stops at the first
failure. A program that never reports (killed, crashed) fails every test (-1, decided by the parent).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from types import ModuleType
from typing import Any
from unittest import mock

PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)
WRONG, TIME_LIMIT, RUNTIME_ERROR = -2, -3, -4
_MAX_PROCESSES = 256


class TimeoutException(Exception):
    """Raised by the per-test alarm (its name marks a time limit, as in LiveCodeBench)."""


def _alarm(_signum: int, _frame: object) -> None:
    raise TimeoutException


class _Timer:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def start(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    @staticmethod
    def stop() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


# ---- stdin as LiveCodeBench serves it -------------------------------------------------------------


class _StdinBytes:
    def __init__(self, text: str) -> None:
        self._data = text.encode("utf-8")

    def read(self, *_args: object) -> bytes:
        return self._data

    def readline(self, *_args: object) -> bytes:
        return self._data.split(b"\n")[0] + b"\n"  # always the first line, as the reference's mock


class _Stdin:
    """``read`` and ``readlines`` give the whole input, ``readline`` walks it; no iteration (a TypeError there)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines = io.StringIO(text)
        self.buffer = _StdinBytes(text)

    def read(self, *_args: object) -> str:
        return self._text

    def readline(self, *args: Any) -> str:
        return self._lines.readline(*args)

    def readlines(self, *_args: object) -> list[str]:
        return self._text.split("\n")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lines, name)


def _run_with_stdin(fn: Any, text: str) -> None:
    """Call ``fn`` with the test input as stdin, the way LiveCodeBench's ``call_method`` patches it.

    Its patches are entered in this order: ``read``, ``readlines`` and ``readline`` of the stdin object
    in place (so ``from sys import stdin``, bound when the program loaded, reads the input line by line,
    without newlines), then ``sys.stdin`` itself, then ``open``.
    """
    lines = iter(text.split("\n"))
    with contextlib.ExitStack() as patches:
        current = sys.stdin
        patches.enter_context(mock.patch.object(current, "read", lambda *_a: text))
        patches.enter_context(mock.patch.object(current, "readlines", lambda *_a: text.split("\n")))
        patches.enter_context(mock.patch.object(current, "readline", lambda *_a: next(lines)))
        patches.enter_context(mock.patch.object(sys, "stdin", _Stdin(text)))
        patches.enter_context(mock.patch("builtins.open", mock.mock_open(read_data=text)))
        with contextlib.suppress(SystemExit):  # a program may exit(); its output so far counts
            fn()


def _captured(fn: Any, text: str) -> str:
    """Run ``fn`` on ``text`` with stdout captured (a StringIO whose ``close`` takes one argument, as LCB's)."""
    saved = sys.stdout
    buf = io.StringIO()
    buf.close = lambda _unused: 1  # type: ignore[assignment,method-assign,misc]
    sys.stdout = buf
    try:
        _run_with_stdin(fn, text)
    finally:
        sys.stdout = saved
    return buf.getvalue()


# ---- program preparation --------------------------------------------------------------------------


def _unwrap_main_guard(code: str) -> str:
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            return ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)  # type: ignore[arg-type]
    except Exception:  # unparsable code is executed as given (and fails there)
        pass
    return code


def _as_function(code: str) -> str:
    """Imports stay at module level; every other statement becomes the body of ``wrapped_function``."""
    try:
        tree = ast.parse(code)
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        body = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        no_args = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
        fields: dict[str, Any] = {"name": "wrapped_function", "args": no_args, "body": body, "decorator_list": []}
        if "type_params" in ast.FunctionDef._fields:
            fields["type_params"] = []
        func = ast.FunctionDef(**fields, lineno=-1)
        return PRELUDE + "\n" + ast.unparse(imports) + "\n" + ast.unparse(func)  # type: ignore[arg-type]
    except Exception:  # as the reference: the raw code, which then fails to run
        return code


def _load(code: str, timer: _Timer) -> Any:
    timer.start()
    try:
        module = ModuleType("tmp_sol", "")
        exec(code, module.__dict__)  # running the program is the point (sandboxed by the parent)
        loaded: Any = module.Solution() if "class Solution" in code else module
        assert loaded is not None
    finally:
        timer.stop()
    return loaded


def _failure(exc: BaseException) -> int:
    return TIME_LIMIT if "timeoutexception" in repr(exc).lower() else RUNTIME_ERROR


# ---- graders --------------------------------------------------------------------------------------


def _call_based(code: str, inputs: list[str], outputs: list[str], fn_name: str, timer: _Timer) -> list[Any]:
    solution = _load(PRELUDE + "\n\n" + code, timer)
    method = getattr(solution, fn_name, None)
    if method is None:
        raise LookupError(f"no function {fn_name}")
    args = [[json.loads(line) for line in case.split("\n")] for case in inputs]
    expected = [json.loads(out) for out in outputs]
    results: list[Any] = []
    for case_args, want in zip(args, expected, strict=False):
        timer.start()
        try:
            got = method(*case_args)
            timer.stop()
            if isinstance(got, tuple):
                got = list(got)
            same = got == want
            results.append(same)
            if not same:
                return results
        except Exception as exc:  # any failure of the program is its verdict
            timer.stop()
            results.append(_failure(exc))
            return results
        finally:
            timer.stop()
    return results


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(x) for x in line.split()]
    except Exception:  # not numbers: only the exact string comparison counts
        return None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _same_output(got: str, want: str) -> bool:
    got_lines, want_lines = _lines(got), _lines(want)
    if len(got_lines) != len(want_lines):
        return False
    for g, w in zip(got_lines, want_lines, strict=True):
        if g == w:
            continue
        gd, wd = _decimals(g), _decimals(w)
        if gd is None or wd is None or gd != wd:
            return False
    return True


def _stdio(code: str, inputs: list[Any], outputs: list[str], timer: _Timer) -> list[Any]:
    program = _load(_as_function(_unwrap_main_guard(code)), timer)
    method = getattr(program, "wrapped_function", None)
    if method is None:
        raise LookupError("no wrapped_function")
    results: list[Any] = []
    for case, want in zip(inputs, outputs, strict=False):
        text = "\n".join(case) if isinstance(case, list) else case
        timer.start()
        try:
            got = _captured(method, text)
        except Exception as exc:  # any failure of the program is its verdict
            timer.stop()
            results.append(_failure(exc))
            return results
        finally:
            timer.stop()
        if not _same_output(got, want):
            results.append(WRONG)
            return results
        results.append(True)
    return results


def _plain(value: Any) -> Any:
    """A result as JSON can carry it (numpy arrays and bools reduce to their first item, as LCB does)."""
    if isinstance(value, (bool, int)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _plain(item(0))
        except Exception:  # an item() that fails: the value's truth decides
            pass
    return bool(value)


# ---- isolation ------------------------------------------------------------------------------------

_DISABLED_OS = (
    "kill",
    "system",
    "putenv",
    "remove",
    "removedirs",
    "rmdir",
    "fchdir",
    "setuid",
    "fork",
    "forkpty",
    "killpg",
    "rename",
    "renames",
    "truncate",
    "replace",
    "unlink",
    "fchmod",
    "fchown",
    "chmod",
    "chown",
    "chroot",
    "lchflags",
    "lchmod",
    "lchown",
    "getcwd",
    "chdir",
)
_BLOCKED_MODULES = ("ipdb", "joblib", "resource", "psutil", "tkinter")


def _limit(cpu_s: int, memory_bytes: int, file_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (_MAX_PROCESSES, _MAX_PROCESSES))  # bounds a spawn loop


def _preload_numpy() -> None:
    """LiveCodeBench's test module imports numpy before the guard, so a program's ``import numpy`` finds it
    loaded; imported after the guard it would fail (it needs functions the guard disables)."""
    with contextlib.suppress(ImportError):
        import numpy  # noqa: F401


def _guard() -> None:
    """What LiveCodeBench's ``reliability_guard`` disables (a program that needs these fails, as there)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in _DISABLED_OS:
        setattr(os, name, None)
    shutil.rmtree = None  # type: ignore[assignment]
    shutil.move = None  # type: ignore[assignment]
    shutil.chown = None  # type: ignore[assignment]
    subprocess.Popen = None  # type: ignore[assignment,misc]
    builtins.quit = None  # type: ignore[assignment]
    builtins.help = None  # type: ignore[assignment]
    for name in _BLOCKED_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]


def main() -> int:
    job = json.loads(sys.stdin.buffer.read())
    # The program sees an empty stdin outside its tests, and its own prints never reach the result pipe.
    result_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    sys.set_int_max_str_digits(50000)  # LiveCodeBench's evaluator raises the limit for every program
    _limit(int(job["cpu_s"]), int(job["memory_bytes"]), int(job["file_bytes"]))
    _preload_numpy()
    signal.signal(signal.SIGALRM, _alarm)
    timer = _Timer(float(job["timeout_s"]))
    _guard()
    try:
        if job.get("fn_name"):
            results = _call_based(job["code"], job["inputs"], job["outputs"], job["fn_name"], timer)
        else:
            results = _stdio(job["code"], job["inputs"], job["outputs"], timer)
    except Exception:  # a program that fails to load or set up is a runtime error
        results = [RUNTIME_ERROR]
    os.write(result_fd, (json.dumps({"results": [_plain(r) for r in results]}) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
