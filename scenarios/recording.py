"""Recorded model outputs for a dataset: one file per precision, int32 ids, compressed.

A recording is an ``.npz`` (``numpy.savez_compressed``) with:

* ``ids``: int32, every sample's output ids concatenated (each ends in EOS unless truncated);
* ``offsets``: int64, ``len(samples) + 1`` boundaries into ``ids``;
* ``meta``: uint8 bytes of a UTF-8 JSON object: ``{"format": "lpuperf-recording/1",
  "precision": "fp32", "dataset_sha256": "...", "provenance": {...}}``.

The sim backend replays a recording under its timing model, so demos and tests need no torch.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common import atomic_path
from scenarios.dataset import DatasetError

if TYPE_CHECKING:
    from pydantic import JsonValue

RECORDING_FORMAT = "lpuperf-recording/1"


@dataclass
class Recording:
    precision: str
    outputs: list[np.ndarray]  # int32 each
    dataset_sha256: str = ""
    provenance: dict[str, JsonValue] = field(default_factory=dict)  # free-form: what made the recording
    source: str = ""

    def __len__(self) -> int:
        return len(self.outputs)


def save_recording(rec: Recording, path: str | Path) -> Path:
    p = Path(path)
    lens = np.array([len(o) for o in rec.outputs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    ids = np.concatenate(rec.outputs).astype(np.int32) if rec.outputs else np.zeros(0, np.int32)
    meta = {
        "format": RECORDING_FORMAT,
        "precision": rec.precision,
        "dataset_sha256": rec.dataset_sha256,
        "provenance": rec.provenance,
    }
    with atomic_path(p, suffix=".tmp.npz") as tmp:
        np.savez_compressed(tmp, ids=ids, offsets=offsets, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return p


def load_recording(path: str | Path) -> Recording:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: recording file not found")
    try:
        with np.load(p, allow_pickle=False) as z:
            ids, offsets, meta_raw = z["ids"], z["offsets"], z["meta"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{p}: not a valid recording (.npz with ids, offsets, meta): {exc}") from None
    try:
        meta = json.loads(bytes(meta_raw).decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DatasetError(f"{p}: field 'meta': expected UTF-8 JSON") from None
    if meta.get("format") != RECORDING_FORMAT:
        raise DatasetError(f"{p}: field 'meta.format': expected '{RECORDING_FORMAT}'")
    if ids.dtype != np.int32 or offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != ids.size:
        raise DatasetError(f"{p}: field 'offsets': expected int64 boundaries 0..len(ids) over int32 ids")
    if np.any(np.diff(offsets) < 0):
        raise DatasetError(f"{p}: field 'offsets': expected non-decreasing boundaries")
    outputs = [ids[offsets[i] : offsets[i + 1]] for i in range(offsets.size - 1)]
    return Recording(
        precision=str(meta.get("precision", "")),
        outputs=outputs,
        dataset_sha256=str(meta.get("dataset_sha256", "")),
        provenance=dict(meta.get("provenance", {})),
        source=str(p),
    )
