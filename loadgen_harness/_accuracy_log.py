"""LoadGen's ``mlperf_log_accuracy.json``: the one reader of the file and the one token encoder.

The log is a JSON list of ``{"seq_id", "qsl_idx", "data": HEX, ...}``. ``data`` holds the raw
response bytes, here token ids as little-endian int32 (LoadGen's LLM default) or int64. With token
latencies an entry also has ``token_count`` and, outside Offline, ``token_data`` (the first-token
bytes). Accuracy scoring and the compliance checks both read the file through here and keep their
own typed view of an entry; each passes its own exception type so its callers' handling holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import JsonValue

from common import UsageError, read_json, write_atomic

ACCURACY_LOG_FILE = "mlperf_log_accuracy.json"
TokenDtype = Literal["int32", "int64"]
_DTYPES: dict[str, np.dtype] = {"int32": np.dtype("<i4"), "int64": np.dtype("<i8")}


def accuracy_log_path(path: str | Path) -> Path:
    """``path`` itself, or the accuracy log inside it when it is a run directory."""
    p = Path(path)
    return p / ACCURACY_LOG_FILE if p.is_dir() else p


def read_accuracy_log_entries(path: str | Path, error: type[Exception] = UsageError) -> list[dict[str, JsonValue]]:
    """The log's entries (a run directory holding the log is accepted); ``error`` naming the file otherwise."""
    p = accuracy_log_path(path)
    if not p.is_file():
        raise error(f"{p}: accuracy log not found (expected {ACCURACY_LOG_FILE})")
    return check_accuracy_log_entries(read_json(p, "the accuracy log", error), str(p), error)


def check_accuracy_log_entries(
    entries: Any, source: str = "accuracy log", error: type[Exception] = UsageError
) -> list[dict[str, JsonValue]]:
    """``entries`` if it is a list of objects (a loaded log); ``error`` naming ``source`` and the entry otherwise."""
    if not isinstance(entries, list):
        raise error(f"{source}: expected a JSON list of {{seq_id, qsl_idx, data}} entries")
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise error(f"{source}: entry {k}: expected an object, got {type(entry).__name__}")
    return entries


def decode_tokens(value: Any, dtype: TokenDtype = "int32") -> np.ndarray:
    """Token ids from a logged hex field; ValueError saying why not (the caller names the file and field)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a hex string, got {type(value).__name__}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError("not valid hex") from None
    np_dtype = _DTYPES[dtype]
    if len(raw) % np_dtype.itemsize:
        raise ValueError(f"{len(raw)} bytes is not a whole number of {dtype} token ids")
    return np.frombuffer(raw, dtype=np_dtype)


def encode_tokens(ids: Any, dtype: TokenDtype = "int32") -> str:
    """Upper-case hex of the token ids, as LoadGen logs a response's bytes."""
    return np.asarray(ids).astype(_DTYPES[dtype]).tobytes().hex().upper()


def write_accuracy_log(path: str | Path, outputs: Sequence[Any], dtype: TokenDtype = "int32") -> Path:
    """A LoadGen-shaped accuracy log, sample ``i`` at ``qsl_idx`` ``i`` (to score recordings, and for tests)."""
    rows = [{"seq_id": i, "qsl_idx": i, "data": encode_tokens(ids, dtype)} for i, ids in enumerate(outputs)]
    return write_atomic(path, json.dumps(rows, indent=0))
