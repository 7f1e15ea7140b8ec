"""The shared-prefix workload (``shared-prefix:systems=K,users=M,...``): K system prompts x M users."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from scenarios import SYNTH_EOS, DatasetError, load_dataset, resolve_dataset, save_dataset


def test_sample_i_is_system_i_mod_k_then_its_own_tokens() -> None:
    k, m, s, u = 3, 4, 48, 16
    ds = resolve_dataset(f"shared-prefix:systems={k},users={m},system_tokens={s},user_tokens={u},output_tokens=9")
    assert len(ds) == k * m
    assert all(ids.dtype == np.int32 and ids.size == s + u for ids in ds.input_ids)
    for i in range(k * m):
        for j in range(k * m):
            same_prefix = np.array_equal(ds.input_ids[i][:s], ds.input_ids[j][:s])
            assert same_prefix == (i % k == j % k), (i, j)
            if i != j:
                assert not np.array_equal(ds.input_ids[i][s:], ds.input_ids[j][s:])
    # references as the synthetic datasets make them: a fixed length, EOS last
    assert all(ref.size == 9 and ref[-1] == SYNTH_EOS for ref in ds.reference_ids)
    assert ds.eos_token_id == SYNTH_EOS and ds.decoder is not None
    assert ds.prompts[0] == ds.decode(ds.input_ids[0]).strip() and ds.targets[0]
    assert ds.source == f"shared-prefix:systems={k},users={m},system_tokens={s},user_tokens={u},output_tokens=9,seed=0"


def test_defaults_seed_and_round_trip(tmp_path: Path) -> None:
    ds = resolve_dataset("shared-prefix")
    assert len(ds) == 4 * 32 and ds.input_ids[0].size == 512 + 64 and ds.reference_ids[0].size == 128
    again = resolve_dataset("shared-prefix:seed=0")
    assert ds.digest() == again.digest()
    assert resolve_dataset("shared-prefix:seed=1").digest() != ds.digest()
    path = save_dataset(ds, tmp_path / "sp.jsonl.gz")
    assert load_dataset(path).digest() == ds.digest()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("shared-prefix:size=3", "key 'size': expected one of systems, users, system_tokens, user_tokens"),
        ("shared-prefix:systems", "key 'systems': expected one of"),
        ("shared-prefix:systems=0", "key 'systems': expected an integer 1..1000000, got '0'"),
        ("shared-prefix:users=-2", "key 'users': expected an integer 1..1000000, got '-2'"),
        ("shared-prefix:user_tokens=1.5", "key 'user_tokens': expected an integer 1..1048576, got '1.5'"),
        ("shared-prefix:seed=x", "key 'seed': expected an integer 0.."),
        ("shared-prefix:users=2,users=3", "key 'users': expected once, got it twice"),
        ("shared-prefix:systems=2000,users=1000", "expected systems x users <= 1000000, got 2000 x 1000"),
    ],
)
def test_bad_keys_and_values_are_one_line(spec: str, message: str) -> None:
    with pytest.raises(DatasetError, match=rf"^dataset '{re.escape(spec)}': .*{re.escape(message)}") as err:
        resolve_dataset(spec)
    assert "\n" not in str(err.value)
