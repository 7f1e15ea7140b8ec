"""Small file helpers every stage uses: atomic writes and strict JSON-object reads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from common._errors import UsageError


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def write_json_atomic(path: str | Path, data: Any, *, sort_keys: bool = False) -> Path:
    """``data`` as indented JSON with a trailing newline, written atomically."""
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def read_json_object(path: str | Path, what: str = "JSON file") -> dict[str, Any]:
    """A JSON object from ``path``; UsageError naming the file and the problem otherwise."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{p}: {what} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{p}: cannot read {what} ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{p}: expected a JSON object in the {what}")
    return raw
