"""The sim's prefix cache: which leading prompt blocks are already computed, so their prefill is skipped.

Modelled on vLLM's automatic prefix caching, in whole blocks of ``block_tokens``:

* A prompt's full blocks get chained keys: block ``i``'s key hashes block ``i - 1``'s key with its own
  tokens, so a key stands for every token up to the end of its block. Two prompts share a block's key
  exactly when they agree on every token up to there. A partial last block is never cached.
* Lookup (:meth:`PrefixCache.admit`) counts the leading blocks found, stopping at the first one missing.
  The prompt's last token is always computed (its logits start the answer), so a prompt of ``n`` tokens
  looks up at most ``(n - 1) // block_tokens`` blocks: a prompt that is whole blocks, all cached, still
  prefills its last block.
* Then all the prompt's full blocks are recorded as used now, tail first, so the head is the most recent:
  under pressure a prompt loses its tail before its head (a tail block is no use without the blocks before
  it; vLLM frees a request's blocks in reverse for the same reason). Blocks beyond the capacity are evicted
  least recently used first.

Everything is deterministic (blake2b keys, an ordered dict as the LRU list): the same prompts in the same
order give the same hits on any machine. The cost is one hash per prompt block at admission, none per
output token.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from sut._artifact import PrefixCacheSettings
from sut._backend import PrefixCacheStats

_KEY_BYTES = 16
_ROOT = b"\0" * _KEY_BYTES  # the key "before" a prompt's first block


def block_keys(input_ids: np.ndarray, block_tokens: int) -> list[bytes]:
    """The chained keys of the prompt's full blocks, first block first."""
    data = np.ascontiguousarray(input_ids, dtype=np.int32).tobytes()
    step = 4 * block_tokens  # int32
    keys: list[bytes] = []
    prev = _ROOT
    for start in range(0, (len(data) // step) * step, step):
        prev = hashlib.blake2b(prev + data[start : start + step], digest_size=_KEY_BYTES).digest()
        keys.append(prev)
    return keys


class PrefixCache:
    """Whole prompt blocks held in LRU order; running totals for the SUT's metrics."""

    def __init__(self, settings: PrefixCacheSettings) -> None:
        self.settings = settings
        self.block_tokens = settings.block_tokens
        self.capacity_blocks = settings.capacity_blocks
        self._blocks: OrderedDict[bytes, None] = OrderedDict()  # least recently used first
        self.hit_tokens = 0
        self.miss_tokens = 0
        self.lookups_hit = 0
        self.lookups_miss = 0
        self.inserted_blocks = 0
        self.evicted_blocks = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, key: bytes) -> bool:
        return key in self._blocks

    def admit(self, input_ids: np.ndarray) -> int:
        """A prompt starts its prefill: how many of its leading tokens are cached; then its blocks are held."""
        n = int(input_ids.size)
        keys = block_keys(input_ids, self.block_tokens)
        blocks = self._blocks
        hit = 0
        for key in keys[: max(0, n - 1) // self.block_tokens]:
            if key not in blocks:
                break
            hit += 1
        cached = hit * self.block_tokens
        for key in reversed(keys):  # tail first: the head ends up most recently used
            if key in blocks:
                blocks.move_to_end(key)
            else:
                blocks[key] = None
                self.inserted_blocks += 1
        while len(blocks) > self.capacity_blocks:
            blocks.popitem(last=False)
            self.evicted_blocks += 1
        self.hit_tokens += cached
        self.miss_tokens += n - cached
        if cached:
            self.lookups_hit += 1
        else:
            self.lookups_miss += 1
        return cached

    def stats(self) -> PrefixCacheStats:
        return PrefixCacheStats(
            capacity_tokens=self.capacity_blocks * self.block_tokens,
            block_tokens=self.block_tokens,
            used_tokens=len(self._blocks) * self.block_tokens,
            hit_tokens=self.hit_tokens,
            miss_tokens=self.miss_tokens,
            lookups_hit=self.lookups_hit,
            lookups_miss=self.lookups_miss,
            inserted_blocks=self.inserted_blocks,
            evicted_blocks=self.evicted_blocks,
        )
