"""The opt-in code sandbox: LiveCodeBench's test semantics, no network, CPU/memory/time limits, refusal.

Every program runs in a real sandboxed subprocess. The semantics rows' expected results are what
LiveCodeBench's ``run_test`` (b1e7cab4) gives for the same program and tests (checked by hand against
it; see the issue-24 report).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from accuracy import _code_exec
from accuracy._code_exec import CodeExecError, CodeLimits, run_program, run_programs, sandbox_prefix

FAST = CodeLimits(timeout_s=2, memory_mb=1024)


@pytest.fixture(autouse=True)
def _sandbox() -> None:
    try:
        sandbox_prefix()
    except CodeExecError as exc:
        pytest.skip(str(exc))


SEMANTICS = [  # code, inputs, outputs, fn_name, LiveCodeBench's per-test results
    ("a, b = map(int, input().split())\nprint(a + b)", ["1 2", "3 4\n"], ["3", "7"], None, [True, True]),
    ("import sys\nprint(sum(map(int, sys.stdin.read().split())))", ["1 2 3\n4"], ["10"], None, [True]),
    # bound when the program loads: the patched readline serves lines without their newline
    ("from sys import stdin\nprint(stdin.readline().strip() or 'EMPTY')", ["x\n"], ["x"], None, [True]),
    ("import sys\nfor line in sys.stdin:\n    print(line.strip())", ["a\nb"], ["a\nb"], None, [-4]),
    # the prelude's "from io import *" shadows the patched builtin open: fd 0 is /dev/null there
    ("print(open(0).read().strip())", ["hello"], ["hello"], None, [-2]),
    ("def main():\n    print(int(input()) + 1)\nif __name__ == '__main__':\n    main()", ["1"], ["2"], None, [True]),
    ("print('1.00 2')", ["x"], ["1 2.0"], None, [True]),  # compared as Decimals
    ("print(3)\nprint()\nprint(4)", ["x"], ["3\n4"], None, [-2]),
    ("print(1)\nexit()\nprint(2)", ["x"], ["1"], None, [True]),
    ("print(1)\nquit()", ["x"], ["1"], None, [-4]),  # the guard disables quit
    ("x = input('Enter: ')\nprint(x)", ["5"], ["5"], None, [-2]),  # the prompt is output too
    ("n = int(input())\nprint(*range(n))", ["3", "5"], ["0 1 2", "0 1 2 3"], None, [True, -2]),
    ("print(2 ** 20000 % 1000)\nprint(len(str(2 ** 20000)))", ["x"], [f"{2**20000 % 1000}\n6021"], None, [True]),
    (
        "class Solution:\n    def add(self, a, b):\n        return a + b",
        ["1\n2", "3\n4"],
        ["3", "7"],
        "add",
        [True, True],
    ),
    ("class Solution:\n    def pair(self, a):\n        return (a, a)", ["5"], ["[5, 5]"], "pair", [True]),
    ("class Solution:\n    def pairs(self, a):\n        return [(a, a)]", ["5"], ["[[5, 5]]"], "pairs", [False]),
    ("class Solution:\n    def f(self, a):\n        return a", ["[1,2]"], ["[1, 2]"], "g", [-4]),
    (
        "class Solution:\n    def f(self, a):\n        return a * 2",
        ["1", "2", "3"],
        ["2", "5", "6"],
        "f",
        [True, False],
    ),
    ("def f(a):\n    return a + 1", ["1"], ["2"], "f", [True]),
    ("syntax error here(", ["x"], ["1"], None, [-4]),
]


@pytest.mark.parametrize(("code", "inputs", "outputs", "fn_name", "expected"), SEMANTICS)
def test_livecodebench_semantics(
    code: str, inputs: list[str], outputs: list[str], fn_name: str | None, expected: list[bool | int]
) -> None:
    result = run_program(code, inputs, outputs, fn_name, FAST)
    assert result.results == expected
    assert result.passed is all(r > 0 for r in expected)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.5)
    try:
        yield srv
    finally:
        srv.close()


def test_the_network_is_unreachable(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    print('connected')\n"
        "except OSError:\n"
        "    print('isolated')\n"
    )
    assert run_program(code, ["x"], ["isolated"], None, FAST).passed
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing reached the parent's listener


def test_a_cpu_hog_is_stopped() -> None:
    t0 = time.monotonic()
    assert run_program("while True:\n    pass", ["x"], ["1"], None, FAST).results == [-3]
    # One that ignores the alarm is killed by the program's CPU/wall limit and fails every test.
    hog = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"
    killed = run_program(hog, ["x", "y"], ["1", "2"], None, CodeLimits(timeout_s=1))
    assert not killed.passed and killed.results == [-1, -1]
    assert time.monotonic() - t0 < 120


def test_a_memory_hog_gets_a_memory_error_not_the_machine() -> None:
    hog = "blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))"
    result = run_program(hog, ["x"], ["1"], None, CodeLimits(timeout_s=20, memory_mb=256))
    assert result.results == [-4]


def _alive(marker: str) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["pgrep", "-f", marker], capture_output=True, check=False).returncode != 0:
            return False
        time.sleep(0.2)
    return True


def test_processes_the_program_starts_die_with_it() -> None:
    # In a session of their own, so the program's process group does not hold them: the PID namespace does.
    spawn = "import os\nos.posix_spawn('/bin/sleep', ['sleep', '{}'], {{}}, setsid=True)\n"
    assert run_program(spawn.format("31.4159") + "print(1)", ["x"], ["1"], None, FAST).passed
    assert not _alive("sleep 31.4159"), "the program's child outlived the program"
    hog = (
        spawn.format("27.1828") + "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"
    )
    assert run_program(hog, ["x"], ["1"], None, CodeLimits(timeout_s=1)).results == [-1]
    assert not _alive("sleep 27.1828"), "the killed program's child outlived the sandbox"


def test_the_program_cannot_write_outside_its_directory(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root drops to nobody")
    target = tmp_path / "victim.txt"
    target.write_text("intact")
    code = f"try:\n    open({str(target)!r}, 'w').write('x')\n    print('wrote')\nexcept OSError:\n    print('denied')"
    assert run_program(code, ["x"], ["denied"], None, FAST).passed
    assert target.read_text() == "intact"


def test_programs_run_in_parallel_in_order() -> None:
    jobs = [(f"print({i})", ["x"], [str(i)], None) for i in range(4)]
    assert [r.passed for r in run_programs(jobs, FAST, workers=2)] == [True] * 4


def _reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_code_exec, "_PREFIX", None)
    monkeypatch.setattr(_code_exec, "_PROBLEM", None)


def test_refuses_without_unshare(monkeypatch: pytest.MonkeyPatch) -> None:
    _reset(monkeypatch)
    monkeypatch.setattr(_code_exec.shutil, "which", lambda _name: None)
    with pytest.raises(CodeExecError, match=r"^--execute-code: refusing .*'unshare' is not installed\)") as err:
        run_program("print(1)", ["x"], ["1"], None, FAST)
    assert "\n" not in str(err.value)


def test_refuses_when_the_namespace_is_not_permitted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _reset(monkeypatch)
    fake = tmp_path / "unshare"
    fake.write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    real_which = _code_exec.shutil.which
    monkeypatch.setattr(_code_exec.shutil, "which", lambda name: str(fake) if name == "unshare" else real_which(name))
    with pytest.raises(CodeExecError, match="Operation not permitted"):
        run_programs([("print(1)", ["x"], ["1"], None)], FAST)
