"""Reading LoadGen's ``mlperf_log_accuracy.json`` as TEST06 sees it: int32 token ids per sample.

LoadGen writes a JSON list of ``{seq_id, qsl_idx, data: HEX}``; with token latencies each entry
also has ``token_count`` and, outside Offline, ``token_data`` (the first-token bytes). A sample whose
bytes cannot be decoded is kept with the reason, so each check can fail it individually the way
MLPerf's script fails a whole check on an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOKEN_DTYPE = np.dtype("<i4")  # TEST06 reads the logged bytes as int32 token ids


class ComplianceInputError(ValueError):
    """An input file or field is unusable; the message is one line naming it and what was expected."""


@dataclass(frozen=True, slots=True)
class LoggedSample:
    """One accuracy-log entry; a field is None when absent, with the decode problem in ``*_error``."""

    seq_id: int
    qsl_idx: int
    data: np.ndarray | None
    data_error: str
    token_data: np.ndarray | None
    token_data_error: str
    token_count: int | None
    token_count_error: str


def _decode_tokens(entry: dict[str, Any], key: str) -> tuple[np.ndarray | None, str]:
    if key not in entry:
        return None, f"no '{key}' field"
    raw = entry[key]
    if not isinstance(raw, str):
        return None, f"'{key}' is {type(raw).__name__}, expected a hex string"
    try:
        buf = bytes.fromhex(raw)
    except ValueError:
        return None, f"'{key}' is not valid hex"
    if len(buf) % TOKEN_DTYPE.itemsize:
        return None, f"'{key}' holds {len(buf)} bytes, not a whole number of int32 token ids"
    return np.frombuffer(buf, dtype=TOKEN_DTYPE), ""


def _decode_count(entry: dict[str, Any]) -> tuple[int | None, str]:
    if "token_count" not in entry:
        return None, "no 'token_count' field"
    raw = entry["token_count"]
    if isinstance(raw, bool):
        return None, "'token_count' is a bool, expected an integer"
    try:
        return int(raw), ""
    except (TypeError, ValueError):
        return None, f"'token_count' is {raw!r}, expected an integer"


def parse_accuracy_log(entries: Any, source: str = "accuracy log") -> list[LoggedSample]:
    """Decode a loaded accuracy log (the JSON list) into samples; ComplianceInputError if not a list."""
    if not isinstance(entries, list):
        raise ComplianceInputError(f"{source}: expected a JSON list of {{seq_id, qsl_idx, data}} entries")
    samples: list[LoggedSample] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ComplianceInputError(f"{source}: entry {i}: expected an object, got {type(entry).__name__}")
        data, data_err = _decode_tokens(entry, "data")
        token_data, td_err = _decode_tokens(entry, "token_data")
        count, count_err = _decode_count(entry)
        samples.append(
            LoggedSample(
                seq_id=int(entry.get("seq_id", i)),
                qsl_idx=int(entry.get("qsl_idx", -1)),
                data=data,
                data_error=data_err,
                token_data=token_data,
                token_data_error=td_err,
                token_count=count,
                token_count_error=count_err,
            )
        )
    return samples


def load_accuracy_log(path: str | Path) -> list[LoggedSample]:
    """Read and decode ``mlperf_log_accuracy.json`` (a directory holding it is accepted too)."""
    p = Path(path)
    if p.is_dir():
        p = p / "mlperf_log_accuracy.json"
    if not p.is_file():
        raise ComplianceInputError(f"{p}: accuracy log not found (expected mlperf_log_accuracy.json)")
    try:
        entries = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ComplianceInputError(f"{p}: cannot read the accuracy log ({exc.__class__.__name__}: {exc})") from None
    return parse_accuracy_log(entries, str(p))


def encode_tokens(ids: Any) -> str:
    """Hex of int32 token ids, as LoadGen logs them (used to build logs in tests and tools)."""
    return np.asarray(ids, dtype=TOKEN_DTYPE).tobytes().hex().upper()


def eos_from_artifact(path: str | Path) -> int:
    """The EOS id an ``artifact.json`` (the SUT's manifest) declares; ComplianceInputError if absent."""
    p = Path(path)
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ComplianceInputError(f"{p}: cannot read the artifact manifest ({exc.__class__.__name__})") from None
    return eos_from_manifest(manifest, str(p))


def eos_from_manifest(manifest: Any, source: str = "artifact") -> int:
    if not isinstance(manifest, dict):
        raise ComplianceInputError(f"{source}: expected a JSON object (the artifact manifest)")
    raw = manifest.get("eos_token_id")
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ComplianceInputError(f"{source}: field 'eos_token_id': expected an integer token id")
    try:
        return int(raw)
    except ValueError:
        raise ComplianceInputError(f"{source}: field 'eos_token_id': expected an integer, got {raw!r}") from None
