"""Small file helpers every stage uses: atomic writes and strict JSON-object reads."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common._errors import UsageError

if TYPE_CHECKING:
    # Annotations only: importing common must not import pydantic (lpuperf --help stays light).
    from pydantic import JsonValue


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temp path beside ``path`` for a writer that wants a file name (numpy, gzip, copyfile).

    On a clean exit the temp file is renamed onto ``path``, so readers never see half a file; on an
    error it is removed. ``suffix`` ends the temp name, for writers that pick a format by extension
    (``np.savez`` appends ``.npz`` to any other name, a gzip opener looks for ``.gz``).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (str as UTF-8) via a temp file in the same directory and rename it onto ``path``."""
    p = Path(path)
    with atomic_path(p) as tmp:
        # O_EXCL: the temp name is ours alone; mode 0o666 lets the umask decide, as a plain open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def write_json_atomic(path: str | Path, data: Any, *, sort_keys: bool = False) -> Path:
    """``data`` as indented JSON with a trailing newline, written atomically."""
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (logs and model files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | Path, what: str = "JSON file", error: type[Exception] = UsageError) -> Any:
    """The JSON value in ``path``; otherwise ``error`` (a UsageError by default) naming the file and the problem.

    ``error`` lets a package keep raising its own exception type (one its callers already catch).
    """
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{p}: {what} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{p}: cannot read {what} ({exc.__class__.__name__}: {exc})") from None


def read_json_object(
    path: str | Path, what: str = "JSON file", error: type[Exception] = UsageError
) -> dict[str, JsonValue]:
    """A JSON object from ``path``; ``error`` naming the file and the problem otherwise (see :func:`read_json`)."""
    raw = read_json(path, what, error)
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a JSON object in the {what}")
    return raw
