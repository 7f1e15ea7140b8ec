"""Dataset names users may pass instead of paths: ``embedded`` and ``synthetic[:N[:SEED]]``."""

from __future__ import annotations

from pathlib import Path

from scenarios.dataset import Dataset, DatasetError, load_dataset
from scenarios.synthetic import synthetic_dataset

DATA_DIR = Path(__file__).with_name("data")
EMBEDDED_DATASET = DATA_DIR / "embedded.jsonl.gz"


def resolve_dataset(spec: str | Path = "embedded") -> Dataset:
    """``embedded`` -> the packaged reference set; ``synthetic:N:SEED`` -> a seeded set; else a path."""
    s = str(spec)
    if s == "embedded":
        if EMBEDDED_DATASET.is_file():
            return load_dataset(EMBEDDED_DATASET)
        # Until the packaged reference set exists the embedded benchmark is a seeded synthetic set.
        return synthetic_dataset(n=512, seed=0, name="embedded-synthetic")
    if s == "synthetic" or s.startswith("synthetic:"):
        parts = s.split(":")[1:]
        try:
            n = int(parts[0]) if parts else 256
            seed = int(parts[1]) if len(parts) > 1 else 0
        except ValueError:
            raise DatasetError(f"dataset '{s}': expected synthetic[:N[:SEED]] with integers") from None
        return synthetic_dataset(n=n, seed=seed)
    return load_dataset(s)
