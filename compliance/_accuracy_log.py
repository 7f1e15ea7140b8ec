"""TEST06's view of LoadGen's ``mlperf_log_accuracy.json``: int32 token ids per sample, failures kept.

The harness reads the file and decodes its hex (``loadgen_harness.read_accuracy_log_entries``,
``decode_tokens``). With token latencies each entry also has ``token_count`` and, outside Offline,
``token_data`` (the first-token bytes). A sample whose bytes cannot be decoded is kept with the
reason, so each check can fail it individually the way MLPerf's script fails a whole check on an
exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import JsonValue

from common import read_json_object
from loadgen_harness import accuracy_log_path, check_accuracy_log_entries, decode_tokens, read_accuracy_log_entries


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


def _decode_field(entry: Mapping[str, JsonValue], key: str) -> tuple[np.ndarray | None, str]:
    # TEST06 reads the logged bytes as int32 token ids.
    if key not in entry:
        return None, f"no '{key}' field"
    try:
        return decode_tokens(entry[key], "int32"), ""
    except ValueError as exc:
        return None, f"field '{key}': {exc}"


def _decode_count(entry: Mapping[str, JsonValue]) -> tuple[int | None, str]:
    if "token_count" not in entry:
        return None, "no 'token_count' field"
    raw = entry["token_count"]
    if isinstance(raw, bool):
        return None, "'token_count' is a bool, expected an integer"
    if isinstance(raw, int | float | str):
        try:
            return int(raw), ""
        except ValueError:
            pass
    return None, f"'token_count' is {raw!r}, expected an integer"


def _index(value: JsonValue, default: int) -> int:
    # seq_id and qsl_idx only label a sample in the report; an unreadable one gets the default label.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def parse_accuracy_log(entries: Any, source: str = "accuracy log") -> list[LoggedSample]:
    """Decode a loaded accuracy log (the JSON list) into samples; ComplianceInputError if not a list of objects."""
    samples: list[LoggedSample] = []
    for i, entry in enumerate(check_accuracy_log_entries(entries, source, ComplianceInputError)):
        data, data_err = _decode_field(entry, "data")
        token_data, td_err = _decode_field(entry, "token_data")
        count, count_err = _decode_count(entry)
        samples.append(
            LoggedSample(
                seq_id=_index(entry.get("seq_id"), i),
                qsl_idx=_index(entry.get("qsl_idx"), -1),
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
    p = accuracy_log_path(path)
    return parse_accuracy_log(read_accuracy_log_entries(p, ComplianceInputError), str(p))


def eos_from_artifact(path: str | Path) -> int:
    """The EOS id an ``artifact.json`` (the SUT's manifest) declares; ComplianceInputError if absent."""
    return eos_from_manifest(read_json_object(path, "artifact manifest", ComplianceInputError), str(path))


def eos_from_manifest(manifest: Mapping[str, JsonValue], source: str = "artifact") -> int:
    """The manifest's EOS token id; ComplianceInputError naming ``source`` and the field otherwise."""
    raw = manifest.get("eos_token_id")
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ComplianceInputError(f"{source}: field 'eos_token_id': expected an integer token id")
    try:
        return int(raw)
    except ValueError:
        raise ComplianceInputError(f"{source}: field 'eos_token_id': expected an integer, got {raw!r}") from None
