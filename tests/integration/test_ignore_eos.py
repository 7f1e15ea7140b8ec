"""``--ignore-eos``: every answer is held to exactly --max-new-tokens, over gRPC and the direct HTTP transport.

The synthetic dataset's reference answers end at EOS after a varying number of tokens, many of them
shorter than the limit used here; without the flag those answers stop early, with it none does. A
performance-only setting: an accuracy run asking for it is refused before anything starts.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import load_query_records
from scenarios import resolve_dataset
from tests.integration.test_openai_relay import DATASET, LPUPERF, _serve, _stop

pytestmark = pytest.mark.integration

MAX_NEW = 100


def _run(tmp: Path, run_id: str, *extra: str) -> tuple[dict[str, object], np.ndarray]:
    out = tmp / "results"
    argv = [LPUPERF, "run", "--scenario", "Offline", "--dataset", DATASET, "--max-new-tokens", str(MAX_NEW)]
    argv += ["--out", str(out), "--run-id", run_id, "--no-record", *extra]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    found = list((out / run_id).glob("*/*/results.json"))
    assert run.returncode in (0, 1) and found, run.stdout + run.stderr  # 1: INVALID (an instant sim has no TPOT)
    return json.loads(found[0].read_text()), load_query_records(found[0].parent)


def _short_references() -> int:
    return sum(1 for ref in resolve_dataset(DATASET).reference_ids if len(ref) < MAX_NEW)


def test_ignore_eos_holds_every_grpc_answer_to_max_new_tokens(tmp_path: Path) -> None:
    assert _short_references() >= 3  # otherwise the flag would change nothing here
    sim = ["--backend", "sim", "--artifact", "sim-instant"]
    plain, plain_recs = _run(tmp_path, "plain", *sim)
    held, held_recs = _run(tmp_path, "held", *sim, "--ignore-eos")
    assert plain["n_errors"] == held["n_errors"] == 0
    assert (plain_recs["n_tokens"] < MAX_NEW).sum() >= 1  # the sim's own answers end at EOS
    assert np.all(held_recs["n_tokens"] == MAX_NEW)
    assert held["submittable"] is False
    assert any(w.startswith("ignore_eos:") for w in held["warnings"])  # type: ignore[union-attr]


def test_ignore_eos_reaches_an_openai_front_over_the_direct_transport(tmp_path: Path) -> None:
    front = _serve(tmp_path, "front", ["--backend", "sim", "--artifact", "sim-instant", "--dataset", DATASET])
    try:
        direct = ["--transport", "openai-http", "--base-url", front.base_url]
        res, recs = _run(tmp_path, "direct", *direct, "--ignore-eos")
    finally:
        _stop(front)
    assert res["n_errors"] == 0
    assert np.all(recs["n_tokens"] == MAX_NEW)


def test_ignore_eos_is_refused_for_accuracy(tmp_path: Path) -> None:
    run = subprocess.run(
        [LPUPERF, "run", "--mode", "accuracy", "--ignore-eos", "--out", str(tmp_path / "r"), "--no-record"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "lpuperf run: error: ignore_eos: a performance-only setting; accuracy needs the model's own answers"
    ]
    assert not (tmp_path / "r").exists()
