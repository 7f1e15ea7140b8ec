"""Dataset names users may pass instead of paths: ``embedded``, ``synthetic[:N[:SEED]]``, ``shared-prefix[:k=v,...]``
and ``reasoning:MODEL``."""

from __future__ import annotations

from pathlib import Path

from scenarios._mlperf_tables import is_mlperf_table, read_mlperf_table
from scenarios._shared_prefix import is_shared_prefix, parse_shared_prefix, shared_prefix_dataset
from scenarios.dataset import Dataset, DatasetError, load_dataset
from scenarios.reasoning_set import parse_reasoning_spec, reasoning_dataset
from scenarios.synthetic import synthetic_dataset

DATA_DIR = Path(__file__).with_name("data")
EMBEDDED_DATASET = DATA_DIR / "embedded.jsonl.gz"


def resolve_dataset(spec: str | Path = "embedded", *, allow_pickle: bool = False) -> Dataset:
    """``embedded`` -> the packaged reference set; ``synthetic:N:SEED`` -> a seeded set;
    ``shared-prefix:systems=K,users=M,...`` -> K system prompts x M users (scenarios/_shared_prefix.py);
    ``reasoning:deepseek-r1`` / ``reasoning:gpt-oss-120b`` (``:SCALE`` optional) -> the packaged reasoning
    set in that benchmark's rendering; a ``.parquet`` / ``.pkl`` path -> one of MLPerf's tables (a pickle
    only with ``allow_pickle``: loading it runs code); else a dataset file."""
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
    if is_shared_prefix(s):
        return shared_prefix_dataset(parse_shared_prefix(s))
    reasoning = parse_reasoning_spec(s)
    if reasoning is not None:
        model, scale = reasoning
        return reasoning_dataset(model.name, scale)
    if is_mlperf_table(s):
        return read_mlperf_table(s, allow_pickle=allow_pickle)
    return load_dataset(s)
