"""Gate and compare on real LoadGen runs against real sim SUTs: a planted slowdown fails, a rerun passes.

The planted regression is an artifact whose decode step is 1.6x longer: TPOT and latency rise by
about that factor while the workload stays the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

QPS = 110.0
DURATION_S = 5.0


def _manifest(tmp: Path, name: str, decode_step_s: float) -> Path:
    from sut import ArtifactManifest, TimingModel

    m = ArtifactManifest(
        artifact_id=name,
        backend="sim",
        model="embedded-sim",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=16,
        timing=TimingModel(prefill_base_s=0.002, prefill_per_token_s=0.000005, decode_step_s=decode_step_s),
        target="sim-lpu",
    )
    p = tmp / f"{name}.json"
    p.write_text(m.model_dump_json())
    return p


def _server_run(out: Path, run_id: str, manifest: Path) -> Path:
    import sut
    from loadgen_harness import RunConfig, run_benchmark

    with sut.spawn_server(["--artifact", str(manifest)]) as server:
        res = run_benchmark(
            RunConfig(
                scenario="Server",
                mode="performance",
                sut=server.address,
                qps=QPS,
                duration_s=DURATION_S,
                out_dir=out,
                run_id=run_id,
                max_new_tokens=24,
            )
        )
    return Path(res.log_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("workflows")
    fast = _manifest(tmp, "sim-fast", 0.002)
    slow = _manifest(tmp, "sim-slow", 0.0032)
    yield {
        "base": _server_run(tmp / "out", "base", fast),
        "rerun": _server_run(tmp / "out", "rerun", fast),
        "slow": _server_run(tmp / "out", "slow", slow),
        "tmp": tmp,
    }


def _results(d: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((d / "results.json").read_text())
    return data


def test_compare_flags_planted_slowdown(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    assert (runs["base"] / "queries.npz").is_file()
    rc = main(["compare", str(runs["base"]), str(runs["slow"]), "--json", str(runs["tmp"] / "cmp.json")])
    out = capsys.readouterr().out
    assert rc == 1, out
    report = json.loads((runs["tmp"] / "cmp.json").read_text())
    regressed = {m["name"] for m in report["metrics"] if m["regression"]}
    assert "tpot_ms.p50" in regressed, out
    tpot = next(m for m in report["metrics"] if m["name"] == "tpot_ms.p50")
    # The decode step is 60 % longer, but both runs also carry the machine's per-token overheads, which
    # dilute the relative change on a loaded box (0.29 under stress-ng --cpu 4): a lower bound well
    # clear of zero is the claim.
    assert tpot["ci_low"] is not None and tpot["ci_low"] > 0.1
    assert "TPOT p50 regressed" in out


def test_compare_rerun_of_same_artifact_has_no_tpot_regression(runs: dict[str, Path]) -> None:
    from workflows._compare import CompareConfig, compare_runs, load_run_data

    # TPOT is set by the artifact's fixed decode step, so an identical artifact must not regress. The sim
    # keeps its steps on the wall clock, so a machine busier during one run than the other really does
    # slow that run: a 30 % tolerance absorbs a loaded box, and the planted 60 % slowdown above is still
    # caught at the default 5 %. TTFT tails on a shared 2-core machine are not asserted here.
    cmp = compare_runs(load_run_data(runs["base"]), load_run_data(runs["rerun"]), CompareConfig(tolerance=0.30))
    regressed = {m.name for m in cmp.regressions}
    assert not {"tpot_ms.p50", "tpot_ms.p90", "tokens_per_second"} & regressed, [m.line for m in cmp.regressions]


def test_gate_fails_slow_artifact_and_passes_fast_one(runs: dict[str, Path], tmp_path: Path) -> None:
    from cli import main

    base_tpot = _results(runs["base"])["tpot_ms"]["p50"]
    slow_tpot = _results(runs["slow"])["tpot_ms"]["p50"]
    assert slow_tpot > 1.3 * base_tpot
    limit = (base_tpot * slow_tpot) ** 0.5  # between the two artifacts
    slo = tmp_path / "slo.json"
    slo.write_text(json.dumps({"name": "tpot", "tpot_ms": {"p50": limit}, "max_error_rate": 0.0}))
    assert main(["gate", str(runs["base"]), "--slo", str(slo), "--junit", str(tmp_path / "a.xml")]) == 0
    assert main(["gate", str(runs["slow"]), "--slo", str(slo), "--junit", str(tmp_path / "b.xml")]) == 1
    gate = json.loads((runs["slow"] / "gate.json").read_text())
    # LoadGen's own verdict on the slow run depends on the box (once INVALID on TTFT p99 even when idle);
    # the point here is that the TPOT objective fails it, and nothing else the SLO names.
    (bad,) = [o for o in gate["objectives"] if not o["passed"] and o["name"] != "result_valid"]
    assert bad["name"] == "tpot_p50" and bad["line"].startswith(f"tpot_p50 {slow_tpot:.2f} ms > {limit:.2f} ms limit")
