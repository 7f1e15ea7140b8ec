"""The query sample library over a :class:`scenarios.Dataset`.

LoadGen asks the QSL to load a performance set before the timed part of a run and to unload it
after. "Loaded" here means the sample's int32 prompt array and its serialised GenerateRequest are
resident, so the issue path does no conversion or allocation beyond the request id.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loadgen_harness._bridge import serialise_requests
from scenarios import Dataset


class DatasetQSL:
    """Owns the LoadGen QSL handle; ``requests[i]`` is sample i's request bytes while loaded."""

    def __init__(self, dataset: Dataset, max_new_tokens: int, perf_count: int | None = None) -> None:
        import mlperf_loadgen as lg

        self.dataset = dataset
        self.max_new_tokens = max_new_tokens
        self.total_count = len(dataset)
        self.perf_count = min(perf_count or self.total_count, self.total_count)
        self.requests: list[bytes] = [b""] * self.total_count
        self.resident: dict[int, np.ndarray] = {}
        self._lg = lg
        self.handle: Any = lg.ConstructQSL(self.total_count, self.perf_count, self._load, self._unload)

    def _load(self, indices: list[int]) -> None:
        ids = [np.ascontiguousarray(self.dataset.input_ids[i], dtype=np.int32) for i in indices]
        prompts = [self.dataset.prompts[i] for i in indices]
        reqs = serialise_requests(ids, prompts, [self.max_new_tokens] * len(ids), self.dataset.eos_token_id)
        for i, arr, req in zip(indices, ids, reqs, strict=True):
            self.resident[i] = arr
            self.requests[i] = req

    def _unload(self, indices: list[int]) -> None:
        for i in indices:
            self.resident.pop(i, None)
            self.requests[i] = b""

    def destroy(self) -> None:
        if self.handle is not None:
            self._lg.DestroyQSL(self.handle)
            self.handle = None
