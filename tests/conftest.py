"""The test session leaves the checkout as it found it.

A test writes only under its ``tmp_path``: a CLI call that falls back on its default ``--out results``
would put runs and records into the user's own ``results/lpuperf.db``. At session start this takes a
snapshot of the checkout's file tree (path, size, mtime; no git needed, so a tarball or a clean CI clone
works alike) and at session end fails the run, naming each path that appeared, changed or vanished.

Skipped on purpose: what tools write whatever the tests do (bytecode, the tools' caches, virtualenvs,
``*.egg-info``), pytest's own temp and cache dirs and report files when they lie inside the checkout.
``LPUPERF_CHECKOUT_GUARD=0`` turns the guard off (for a run while you edit the checkout yourself).

The session also drops ``$LPUPERF_DB`` (and its password file variable): with a user's or a team's store
named there, every CLI test that records would write into it. Without it a command records into
``OUT/lpuperf.db`` under the test's ``--out``, and one that forgets ``--out`` still trips the guard.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUARD_ENV = "LPUPERF_CHECKOUT_GUARD"
STORE_ENVS = ("LPUPERF_DB", "LPUPERF_DB_PASSWORD_FILE")  # history._store's DB_ENV, DB_PASSWORD_FILE_ENV
SKIPPED_DIRS = frozenset(
    {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".tox", ".nox"}
)
SHOWN_AT_MOST = 30

Snapshot = dict[str, tuple[int, int]]  # path relative to the root -> (size in bytes, mtime in ns)
_BEFORE = pytest.StashKey[Snapshot]()
_CHANGES = pytest.StashKey[list[str]]()


def _skipped_dir(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    if name in SKIPPED_DIRS or name.endswith(".egg-info"):
        return True
    return os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))  # any virtualenv: .venv, .venv-peers, ...


def snapshot(root: Path, skip: frozenset[Path] = frozenset()) -> Snapshot:
    """Every file and link under ``root`` but the skipped dirs and paths: {relative path: (size, mtime_ns)}."""
    skip_str = {str(p) for p in skip}
    found: Snapshot = {}
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                entries = list(it)
        except OSError:  # a dir removed while we walk: the parent's entry shows the change
            continue
        for entry in entries:
            if entry.path in skip_str:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not _skipped_dir(entry):
                        stack.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:  # vanished between listing and stat
                continue
            found[os.path.relpath(entry.path, root)] = (st.st_size, st.st_mtime_ns)
    return found


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """One line per path that appeared, changed or vanished, sorted by path."""
    lines = [f"added   {p}" for p in after.keys() - before.keys()]
    lines += [f"changed {p}" for p in after.keys() & before.keys() if after[p] != before[p]]
    lines += [f"removed {p}" for p in before.keys() - after.keys()]
    return sorted(lines, key=lambda line: line[8:])


def _guard_off(config: pytest.Config) -> bool:
    # An xdist worker shares the checkout with its controller, which alone keeps the snapshot.
    return os.environ.get(GUARD_ENV, "1").strip() in ("0", "off", "no", "false") or hasattr(config, "workerinput")


def _skipped_paths(config: pytest.Config) -> frozenset[Path]:
    """pytest's own outputs, wherever the command line put them (a --basetemp inside the checkout, ...)."""
    paths: list[str | Path] = []
    if config.pluginmanager.has_plugin("cacheprovider"):  # -p no:cacheprovider unregisters cache_dir
        paths.append(config.rootpath / config.getini("cache_dir"))
    for option in ("basetemp", "xmlpath", "reportlog", "debug"):
        value = getattr(config.option, option, None)
        if isinstance(value, str) and value:
            paths.append(Path(value))
    if config.option.basetemp is None:
        # The default temp root is $TMPDIR/pytest-of-USER, inside the checkout only when TMPDIR points there.
        factory = getattr(config, "_tmp_path_factory", None)
        if factory is not None:
            paths.append(factory.getbasetemp().parent)
    return frozenset(Path(os.path.abspath(p)) for p in paths)


def pytest_configure(config: pytest.Config) -> None:
    for name in STORE_ENVS:
        os.environ.pop(name, None)


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not _guard_off(config):
        config.stash[_BEFORE] = snapshot(ROOT, _skipped_paths(config))


@pytest.hookimpl(tryfirst=True)  # before other plugins write their reports (junitxml, ...)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    before = config.stash.get(_BEFORE, None)
    if before is None:
        return
    found = changes(before, snapshot(ROOT, _skipped_paths(config)))
    if found:
        config.stash[_CHANGES] = found
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    found = config.stash.get(_CHANGES, None)
    if not found:
        return
    terminalreporter.section("checkout changed", sep="=", red=True, bold=True)
    terminalreporter.write_line(
        f"the test session wrote into the checkout {ROOT} ({len(found)} paths); tests write only under tmp_path:"
    )
    for line in found[:SHOWN_AT_MOST]:
        terminalreporter.write_line(f"  {line}")
    if len(found) > SHOWN_AT_MOST:
        terminalreporter.write_line(f"  ... and {len(found) - SHOWN_AT_MOST} more")
    terminalreporter.write_line(f"(edited these yourself during the run? {GUARD_ENV}=0 turns this check off)")
