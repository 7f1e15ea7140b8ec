"""Every command in the README's shell blocks still works.

Commands come from the fenced ```bash / ```sh / ```shell / ```console blocks (in console blocks only the
``$ `` lines). ``lpuperf ...`` commands must parse with the real CLI parser; ``make TARGET VAR=...``
commands must dry-run (``make -n``) with the Makefile; files a ``docker ... -f FILE`` names and the
README's links to docs must exist.
The commands that read a run directory (gate, compare, report) run for real against a short Server run.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHELL_LANGS = {"bash", "sh", "shell", "console"}
# Commands that take a run directory and finish in seconds: run for real against the fixture run.
RUNNABLE = ("gate", "compare", "report")
# A run directory in an example: any prefix, then <scenario>/<mode>.
RUN_DIR = re.compile(r"^\S*/(SingleStream|MultiStream|Server|Offline|Interactive)/(performance|accuracy)/?$")


def readme_commands(text: str) -> list[str]:
    """The commands in the README's shell blocks, continuation lines joined, comments dropped."""
    commands: list[str] = []
    for lang, body in re.findall(r"^```([A-Za-z]*)[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        if lang.lower() not in SHELL_LANGS:
            continue
        pending = ""
        for raw in body.splitlines():
            line = raw.rstrip()
            if lang.lower() == "console" and not pending:
                if not line.startswith("$ "):
                    continue  # program output
                line = line[2:]
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = (pending + line).strip()
            pending = ""
            if line and shlex.split(line, comments=True):
                commands.append(line)
    return commands


def _words(cmd: str) -> list[str]:
    return shlex.split(cmd, comments=True)


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))
LPUPERF = [c for c in COMMANDS if _words(c)[0] == "lpuperf"]
MAKE = [c for c in COMMANDS if _words(c)[0] == "make"]
DOCKER = [c for c in COMMANDS if _words(c)[0] == "docker"]
RUNS = [c for c in LPUPERF if len(_words(c)) > 1 and _words(c)[1] in RUNNABLE]


def test_readme_has_the_quick_start_and_examples() -> None:
    assert "make server-scenario" in MAKE and "make test" in MAKE, MAKE
    assert len(LPUPERF) >= 10, LPUPERF
    # Each runnable subcommand appears, so the real runs below check something.
    assert {_words(c)[1] for c in RUNS} == set(RUNNABLE), RUNS


def test_extractor_reads_blocks_prompts_continuations_and_comments() -> None:
    text = (
        "```bash\nlpuperf run \\\n  --qps 5   # five\n# a comment\n\n```\n"
        "```console\n$ make test\n1 passed\n```\n"
        "```python\nlpuperf = 1\n```\n"
        "```yaml\nmake: x\n```\n"
    )
    assert [_words(c) for c in readme_commands(text)] == [["lpuperf", "run", "--qps", "5"], ["make", "test"]]


def test_readme_links_to_files_that_exist() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert local, "README links to no docs"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


# Flags whose value must be an existing file when parsed (a secret on the command line is refused):
# the README names files its own commands make (docker/make-certs.sh), so stand-ins are put there.
SECRET_FILE_FLAGS = ("--token-file", "--auth-token-file", "--metrics-token-file", "--metrics-basic-auth-file")


@pytest.mark.parametrize("cmd", LPUPERF)
def test_lpuperf_command_parses(
    cmd: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import build_parser

    words = _words(cmd)[1:]
    if any(flag in words for flag in SECRET_FILE_FLAGS):
        monkeypatch.chdir(tmp_path)
        for flag, value in itertools.pairwise(words):
            if flag in SECRET_FILE_FLAGS:
                (tmp_path / value).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / value).write_text("stand-in\n", encoding="utf-8")
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:
        err = capsys.readouterr().err.strip().splitlines()
        pytest.fail(f"README command no longer parses (exit {exc.code}): {cmd}\n  {err[-1] if err else ''}")


def _make_env() -> dict[str, str]:
    # A parent make (`make test`) passes its flags and variables down; the dry run must not see them.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    env["LC_ALL"] = "C"
    return env


@pytest.mark.parametrize("cmd", MAKE)
def test_make_command_dry_runs(cmd: str) -> None:
    args = _words(cmd)[1:]
    targets = [a for a in args if "=" not in a and not a.startswith("-")]
    assert targets, f"README make command names no target: {cmd}"
    proc = subprocess.run(
        ["make", "-n", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60, env=_make_env()
    )
    assert proc.returncode == 0, f"`make -n` failed for README command: {cmd}\n{proc.stderr.strip()}"


@pytest.mark.parametrize("cmd", DOCKER)
def test_docker_command_files_exist(cmd: str) -> None:
    words = _words(cmd)
    files = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-f", "--file")]
    for f in files:
        assert (ROOT / f).is_file(), f"README command names a missing file {f}: {cmd}"


def _lpuperf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 3-second Server run on the embedded sim SUT (too short for LoadGen to call it VALID)."""
    tmp = tmp_path_factory.mktemp("readme")
    proc = _lpuperf(
        "run", "--scenario", "Server", "--qps", "40", "--duration", "3", "--max-new-tokens", "16",
        "--out", str(tmp / "results"), "--run-id", "readme",
        cwd=tmp,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    d = tmp / "results" / "readme" / "Server" / "performance"
    assert (d / "results.json").is_file() and (d / "queries.npz").is_file(), proc.stdout + proc.stderr
    yield d


@pytest.mark.integration
@pytest.mark.parametrize("cmd", RUNS)
def test_run_directory_command_runs(cmd: str, run_dir: Path) -> None:
    words = _words(cmd)
    sub = words[1]
    args = [str(run_dir) if RUN_DIR.match(w) else w for w in words[1:]]
    assert str(run_dir) in args, f"README command names no run directory <scenario>/<mode>: {cmd}"
    if "-o" in args or "--out" in args:  # keep outputs in the fixture's directory
        i = args.index("-o") if "-o" in args else args.index("--out")
        args[i + 1] = str(run_dir.parent / Path(args[i + 1]).name)
    proc = _lpuperf(*args, cwd=run_dir.parent)
    out = proc.stdout + proc.stderr
    if sub == "report":
        assert proc.returncode == 0, out
        assert (run_dir / "report.html").is_file() or "-o" in args or "--out" in args, out
    elif sub == "compare":
        # Placeholders for both runs map to the one fixture run: nothing can regress.
        assert proc.returncode == 0, out
    else:  # gate: the short run is not VALID, so a violation (1) is fine; 2 would be bad input
        assert proc.returncode in (0, 1), out
        assert (run_dir / "gate.json").is_file() and (run_dir / "gate.junit.xml").is_file(), out
        # The README's SLO asks only for what the run the README shows has: no objective lacks its evidence.
        objectives = json.loads((run_dir / "gate.json").read_text())["objectives"]
        lacking = [o["line"] for o in objectives if "no evidence" in o["line"] or "next to the run" in o["line"]]
        assert not lacking, f"README gate example needs reports a plain run lacks: {cmd}\n{lacking}"
