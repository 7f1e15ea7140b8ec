"""The reference set's prompt writer, the shipped data, and the loaders' handling of corrupt files."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from common import RegistryError
from scenarios import DatasetError, Recording, load_dataset, load_recording, save_recording
from scenarios._reference_prompts import CATEGORIES, write_prompts
from sut import backends
from sut._hf import artifact_checksum

DATA = Path(__file__).resolve().parents[3] / "scenarios" / "data"
EMBEDDED = DATA / "embedded.jsonl.gz"
PRECISIONS = ("fp32", "bf16", "int8")


def _solve(prompt: str) -> int:
    """Recompute an arithmetic problem's answer from its text alone."""
    problem = prompt.split("final number.")[-1]
    m = re.search(r"\w+ has (\d+) ", problem)
    assert m is not None, prompt
    total = int(m.group(1))
    for step in re.finditer(r"buys (\d+) more|gives (\d+) away|multiplied by (\d+)", problem):
        buy, give, times = step.groups()
        total = total + int(buy) if buy else total - int(give) if give else total * int(times)
    return total


def test_prompts_are_deterministic_and_seed_dependent() -> None:
    a, b = write_prompts(60, seed=7), write_prompts(60, seed=7)
    assert [p.model_dump() for p in a] == [p.model_dump() for p in b]
    c = write_prompts(60, seed=8)
    assert sum(x.prompt != y.prompt for x, y in zip(a, c, strict=True)) > 50


def test_prompts_cover_every_category_evenly() -> None:
    prompts = write_prompts(510)
    counts = {cat: sum(p.category == cat for p in prompts) for cat in CATEGORIES}
    assert counts == {"qa": 170, "summarization": 170, "arithmetic": 170}
    assert [p.index for p in prompts] == list(range(510))


def test_arithmetic_answers_are_exact() -> None:
    problems = [p for p in write_prompts(300) if p.category == "arithmetic"]
    assert len(problems) == 100
    for p in problems:
        assert p.answer is not None and p.answer == str(_solve(p.prompt)), p.prompt
        assert p.target.endswith(f"The answer is {p.answer}.")


def test_qa_ground_truth_is_in_the_fact_sheet() -> None:
    for p in write_prompts(120):
        if p.category == "qa":
            assert p.target in p.prompt and p.answer is not None and p.answer in p.target
        if p.category == "summarization":
            assert p.answer is None and len(p.target.split()) >= 20


def test_prompt_lengths_spread() -> None:
    words = np.array([len(p.prompt.split()) for p in write_prompts(510)])
    # ~1.6 tokens per word plus the chat template: these bounds map to ~50..1000 tokens.
    assert words.min() >= 20 and words.max() <= 700
    assert np.percentile(words, 10) < 80 and np.percentile(words, 90) > 300


def test_recording_round_trip(tmp_path: Path) -> None:
    outs = [np.array([5, 6, 2], np.int32), np.array([2], np.int32), np.array([9] * 50 + [2], np.int32)]
    path = save_recording(Recording("bf16", outs, "abc", {"model_sha256": "x"}), tmp_path / "bf16.npz")
    rec = load_recording(path)
    assert rec.precision == "bf16" and rec.dataset_sha256 == "abc" and rec.provenance == {"model_sha256": "x"}
    assert [o.tolist() for o in rec.outputs] == [o.tolist() for o in outs]


def test_generic_options_map_onto_each_backends_config() -> None:
    """Callers pass {kind, artifact, precision, ...}; each backend's model maps them onto its own fields."""
    parsed = backends.parse_config({"kind": "transformers", "precision": "bf16"})
    assert parsed.precision == "bf16" and parsed.kind == "transformers"  # type: ignore[attr-defined]
    sim = backends.parse_config({"kind": "sim", "precision": "int8"})
    assert sim.artifact == "sim-int8"  # type: ignore[attr-defined]
    hf = backends.parse_config({"kind": "transformers", "artifact": "/m/dir", "max_batch": 4})
    assert hf.model_path == "/m/dir"  # type: ignore[attr-defined]


def test_bad_transformers_config_is_one_line() -> None:
    with pytest.raises(RegistryError, match="precision") as exc:
        backends.parse_config({"kind": "transformers", "precision": "fp16"})
    assert "\n" not in str(exc.value)
    with pytest.raises(RegistryError, match="max_batch"):
        backends.parse_config({"kind": "transformers", "max_batch": 0})
    with pytest.raises(RegistryError, match="faults"):  # the sim's fault flags are not silently dropped
        backends.parse_config({"kind": "transformers", "faults": {"mid_sequence_eos": True}})
    cfg = backends.parse_config({"kind": "transformers", "artifact": "/models/x", "dataset": "embedded"})
    assert cfg.model_path == "/models/x"  # type: ignore[attr-defined]


def test_each_precision_is_its_own_artifact() -> None:
    sums = {artifact_checksum("ab" * 32, p) for p in PRECISIONS}
    assert len(sums) == 3 and all(s.startswith("sha256:") for s in sums)


def test_missing_model_path_is_one_clear_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from sut._hf_model import ModelLoadError, load_model

    with pytest.raises(ModelLoadError, match=r"model_path: .*does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"not a \.gguf"):
        load_model(tmp_path / "weights.bin")
    with pytest.raises(ModelLoadError, match="precision: expected one of fp32, bf16, int8"):
        load_model(None, "fp8")


# --- the shipped reference set -------------------------------------------------------------------

needs_data = pytest.mark.skipif(not EMBEDDED.is_file(), reason="reference set not built (make reference-set)")


@needs_data
def test_shipped_reference_set_is_complete() -> None:
    ds = load_dataset(EMBEDDED)
    assert len(ds) >= 500 and ds.name == "embedded"
    assert set(ds.categories) == set(CATEGORIES)
    lengths = np.array([ids.size for ids in ds.input_ids])
    assert lengths.min() >= 50 and lengths.max() <= 1000 and np.percentile(lengths, 90) > 400
    assert all(ref[-1] == ds.eos_token_id for ref in ds.reference_ids)
    # The header decoder alone turns reference ids into readable text (no transformers needed).
    text = ds.decode(ds.reference_ids[0])
    assert text.strip() and "\ufffd" not in text
    assert ds.decode(ds.input_ids[0]).count(ds.prompts[0][:40]) == 1
    for precision in PRECISIONS:
        rec = load_recording(DATA / "recordings" / f"{precision}.npz")
        assert rec.precision == precision and len(rec) == len(ds)
        assert rec.dataset_sha256 == ds.digest()
        assert rec.provenance["model_sha256"] and rec.provenance["torch"] and rec.provenance["transformers"]
        assert all(o[-1] == ds.eos_token_id for o in rec.outputs)
    fp32 = load_recording(DATA / "recordings" / "fp32.npz")
    assert all(np.array_equal(a, b) for a, b in zip(fp32.outputs, ds.reference_ids, strict=True))


@needs_data
def test_truncated_reference_set_is_rejected(tmp_path: Path) -> None:
    raw = EMBEDDED.read_bytes()
    bad = tmp_path / "embedded.jsonl.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match=r"embedded\.jsonl\.gz: cannot read dataset") as exc:
        load_dataset(bad)
    assert "\n" not in str(exc.value)


@needs_data
def test_garbled_reference_set_is_rejected(tmp_path: Path) -> None:
    lines = gzip.decompress(EMBEDDED.read_bytes()).decode().splitlines()
    lines[3] = lines[3].replace('"reference_ids":[', '"reference_ids":[-7,', 1)
    bad = tmp_path / "garbled.jsonl.gz"
    bad.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(DatasetError, match=r"garbled\.jsonl\.gz:4: field 'reference_ids'"):
        load_dataset(bad)
    lines[3] = lines[3][: len(lines[3]) // 2]
    bad.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(DatasetError, match=r"garbled\.jsonl\.gz:4: not valid JSON"):
        load_dataset(bad)


@needs_data
def test_corrupted_recording_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "fp32.npz"
    shutil.copy(DATA / "recordings" / "fp32.npz", bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = b"\0" * 64
    bad.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"fp32\.npz"):
        load_recording(bad)
    good = load_recording(DATA / "recordings" / "fp32.npz")
    assert len(good) >= 500


def test_shard_checkpoints_merge_in_prompt_order(tmp_path: Path) -> None:
    from workflows._reference_build import _merge_shards

    ckpt = tmp_path / "fp32-abc-96-16.npz"
    outs = [np.array([i, 100 + i, 2], np.int32) for i in range(7)]
    for k in range(3):
        part = [outs[i] for i in range(7) if i % 3 == k]
        prov = {"capped": k, "seconds": 10.0 * (k + 1)}
        save_recording(Recording("fp32", part, provenance=prov), ckpt.with_name(ckpt.stem + f"-{k}of3.npz"))
    assert _merge_shards(ckpt, 7)
    rec = load_recording(ckpt)
    assert [o.tolist() for o in rec.outputs] == [o.tolist() for o in outs]
    assert rec.provenance == {"capped": 3, "seconds": 30.0, "shards": 3}


def test_incomplete_shards_are_not_merged(tmp_path: Path) -> None:
    from workflows._reference_build import _merge_shards

    ckpt = tmp_path / "bf16-abc-96-16.npz"
    save_recording(
        Recording("bf16", [np.array([2], np.int32)], provenance={"capped": 0, "seconds": 1.0}),
        ckpt.with_name(ckpt.stem + "-0of2.npz"),
    )
    assert not _merge_shards(ckpt, 2) and not ckpt.exists()
