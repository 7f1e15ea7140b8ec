"""Checks a run makes once the SUT's artifact manifest is known, before LoadGen issues anything.

A sample whose prompt plus ``max_new_tokens`` exceeds the context the SUT advertises can only be
refused, so a run carrying such samples would go to its end and fail each of them. Saying so up
front, with the count and the worst case, costs one pass over the prompt lengths.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import JsonValue

from scenarios import Dataset


def manifest_count(artifact: Mapping[str, JsonValue], key: str) -> int | None:
    """A positive whole-number field of the manifest (``max_batch``, ``max_context_tokens``); None otherwise."""
    raw = artifact.get(key)
    # A proto uint64 arrives as a string through MessageToDict.
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


def advertised_context(artifact: Mapping[str, JsonValue]) -> int | None:
    """The manifest's ``max_context_tokens`` as an int; None when the SUT does not advertise one."""
    return manifest_count(artifact, "max_context_tokens")


def context_overflow_error(dataset: Dataset, max_new_tokens: int, artifact: Mapping[str, JsonValue]) -> str | None:
    """One line naming how many samples exceed the SUT's advertised context and the largest; None if none do."""
    limit = advertised_context(artifact)
    if limit is None or len(dataset) == 0:
        return None
    prompts = np.fromiter((ids.size for ids in dataset.input_ids), dtype=np.int64, count=len(dataset))
    totals = prompts + int(max_new_tokens)
    n_over = int(np.count_nonzero(totals > limit))
    if n_over == 0:
        return None
    worst = int(np.argmax(totals))
    return (
        f"dataset: {n_over} of {len(dataset)} samples exceed the SUT's context of {limit} tokens "
        f"(largest {int(totals[worst])} = {int(prompts[worst])} prompt + {max_new_tokens} max_new_tokens); "
        "pass --allow-context-overflow to send them anyway"
    )
