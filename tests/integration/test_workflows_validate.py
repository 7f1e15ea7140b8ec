"""`lpuperf validate` on real sim SUTs: every stage runs for real (Server, Offline, accuracy + fidelity,
TEST06, context probe); the verdict follows what was measured.

The baseline (sim-fp32) is measured once and reused for each candidate. A small synthetic dataset and
a fast sim timing keep each artifact to a few seconds per stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gate import SloSpec, load_slo
from scenarios import resolve_dataset, save_dataset
from workflows._validate import ArtifactEvidence, ArtifactRunner, ValidateConfig, decide, sut_for, validate

pytestmark = pytest.mark.integration

DATASET = "synthetic:96:5"
FAST = {"decode_step_s": 0.001, "prefill_base_s": 0.001, "prefill_per_token_s": 0.000002}


def _cfg(tmp: Path, candidate: str, **over: object) -> ValidateConfig:
    raw: dict[str, object] = {
        "baseline": "sim-fp32",
        "candidate": candidate,
        "dataset": DATASET,
        # ~550 queries (enough for LoadGen's early stopping) at a rate a loaded 2-core box serves in its limits
        "qps": 50.0,
        "duration_s": 11.0,
        "offline_duration_s": 2.0,
        "backend": {"dataset": DATASET, **FAST},
        "out_dir": tmp,
        "run_id": f"v-{candidate}",
    }
    raw.update(over)
    return ValidateConfig.model_validate(raw)


@pytest.fixture(scope="module")
def slo() -> SloSpec:
    return load_slo("embedded")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, slo: SloSpec) -> ArtifactEvidence:
    tmp = tmp_path_factory.mktemp("validate")
    cfg = _cfg(tmp, "sim-fp32")
    with sut_for(cfg.baseline, cfg.backend) as address:
        evidence = ArtifactRunner(cfg, "baseline", address, print).collect(cfg.baseline)
    assert not evidence.errors and evidence.accuracy and evidence.fidelity
    # A clean artifact judged against itself deploys.
    report = decide(cfg, slo, evidence, evidence)
    assert report.verdict == "DEPLOY", report.reasons
    return evidence


def test_context_capped_artifact_fails_naming_the_length(
    baseline: ArtifactEvidence, slo: SloSpec, tmp_path: Path
) -> None:
    report = validate(_cfg(tmp_path, "sim-ctx16k"), slo, echo=print, baseline_evidence=baseline)
    assert report.verdict == "NO DEPLOY"
    (reason,) = [r for r in report.reasons if r.startswith("compliance_context")]
    assert "advertised 131072" in reason and "failed at 65536" in reason, reason
    assert (tmp_path / "v-sim-ctx16k" / "validate.json").is_file()


def _slipped_dataset(tmp: Path) -> Path:
    """The test dataset with 60% of the arithmetic outputs changed: what a lossy int8 build would serve."""
    ds = resolve_dataset(DATASET)
    rng = np.random.default_rng(11)
    arith = [i for i, c in enumerate(ds.categories) if c == "arithmetic"]
    for i in rng.choice(arith, int(0.6 * len(arith)), replace=False):
        ref = ds.reference_ids[i].copy()
        ref[-4:-1] = ref[-4:-1] + 1  # three tokens before EOS differ
        ds.reference_ids[i] = ref
    return save_dataset(ds, tmp / "slipped.jsonl")


def test_int8_style_slippage_is_named_per_category(baseline: ArtifactEvidence, slo: SloSpec, tmp_path: Path) -> None:
    slipped = _slipped_dataset(tmp_path)
    # The candidate's own dataset overrides the shared one, so its SUT serves the slipped outputs.
    cfg = _cfg(tmp_path, "sim-int8", candidate_backend={"dataset": str(slipped)})
    report = validate(cfg, slo, echo=print, baseline_evidence=baseline)
    assert report.verdict == "NO DEPLOY"
    assert any(r.startswith("fidelity_exact_match[arithmetic] ") for r in report.reasons), report.reasons
    assert report.slippage[0].startswith("arithmetic: exact match vs FP32 100.0% -> 4"), report.slippage
    assert not any(r.startswith("fidelity_exact_match[qa]") for r in report.reasons)


@pytest.mark.slow
def test_bf16_verdict_follows_recorded_fidelity(baseline: ArtifactEvidence, slo: SloSpec, tmp_path: Path) -> None:
    from workflows._compare import fidelity_section

    report = validate(_cfg(tmp_path, "sim-bf16"), slo, echo=print, baseline_evidence=baseline)
    fid = report.candidate.fidelity
    assert fid is not None
    sections = {o.category: fidelity_section(fid, o.category) for o in slo.fidelity}
    meets = all(
        (s.exact_match_fraction if (s := sections[o.category]) else 0.0) >= (o.min_exact_match_fraction or 0.0)
        for o in slo.fidelity
    )
    fidelity_lines = [r for r in report.reasons if r.startswith("fidelity_")]
    assert bool(fidelity_lines) == (not meets)
    assert (report.verdict == "DEPLOY") == (meets and not report.reasons)
