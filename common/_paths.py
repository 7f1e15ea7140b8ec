"""Checks on the paths a command will write, made before anything starts.

A run that finds out at its end that it cannot write its results has wasted the whole run, and a
run id like ``../x`` would write outside the output root. These checks fail early with one line and
leave nothing behind: writability is tested by creating and removing a probe file in the nearest
directory that exists, because permission bits say nothing for root or for read-only mounts.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from common._errors import UsageError

RUN_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
_RUN_ID_MAX = 200


def check_run_id(value: str) -> str:
    """``value`` when it is one safe path component (letters, digits, ``.``, ``_``, ``-``), else UsageError.

    UsageError is a ValueError, so this also serves as a pydantic validator.
    """
    if not isinstance(value, str) or not RUN_ID_RE.fullmatch(value) or value in (".", "..") or len(value) > _RUN_ID_MAX:
        raise UsageError(
            f"expected one path component of letters, digits, '.', '_' or '-' (not '.' or '..', "
            f"at most {_RUN_ID_MAX} characters), got '{value}'"
        )
    return value


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p):
        parent = p.parent
        if parent == p:
            break
        p = parent
    return p


def _probe_write(directory: Path) -> str | None:
    """None when a file can be created in ``directory``, else why not."""
    probe = directory / f".lpuperf-write-probe.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()
    return None


def _dir_problem(p: Path) -> str | None:
    """Why directory ``p`` cannot be created (when missing) or written in; None when it can."""
    if p.exists() and not p.is_dir():
        return "expected a directory, got an existing file"
    base = _nearest_existing(p.absolute())
    if not base.is_dir():
        return f"cannot create a directory under {base}: not a directory"
    why = _probe_write(base)
    if why is None:
        return None
    verb = "cannot write in" if base == p.absolute() else "cannot create a directory under"
    return f"{verb} {base} ({why})"


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def check_writable_dir(path: str | os.PathLike[str], what: str = "") -> Path:
    """``path`` as a directory this process can create (if missing) and write in; UsageError otherwise.

    ``what`` names the flag or field the message starts with (argparse adds its own). Nothing is created.
    """
    p = Path(path)
    why = _dir_problem(p)
    if why is not None:
        raise UsageError(f"{_prefix(what)}{p}: {why}")
    return p


def check_writable_file(path: str | os.PathLike[str], what: str = "") -> Path:
    """``path`` as a file this process can create or replace (parents may be missing); UsageError otherwise."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{_prefix(what)}{p}: expected a file path, got a directory")
    why = _dir_problem(p.absolute().parent)
    if why is not None:
        why = why.replace("expected a directory, got an existing file", "a parent is a file")
        raise UsageError(f"{_prefix(what)}{p}: {why}")
    return p
