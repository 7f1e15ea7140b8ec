"""Each planted SUT fault trips exactly its checks on a real TEST06 pass; a clean artifact passes all.

One sim SUT per artifact (a real ``lpuperf serve`` subprocess with zero-time timing so TEST06's 100
queries take about a second), one real LoadGen performance pass with TEST06's audit.config, then the
context probe against the same SUT. Which checks each fault must trip, and why:

==========================  ===================  ==========================  ===============
fault                       MLPerf TEST06 lines  strict checks               context probe
==========================  ===================  ==========================  ===============
(clean)                     -                    -                           pass
duplicate_trailing_eos      EOS                  strict_eos                  pass
mid_sequence_eos            - (MLPerf's point)   strict_eos                  pass
wrong_first_token           first token          stream_matches_output       pass
n_tokens_off_by_one         sample length        token_count                 pass
batch_first_token           - (still a prefix)   first_token_alone           pass
enforced context < adv.     -                    -                           FAIL
==========================  ===================  ==========================  ===============

wrong_first_token streams a first token that differs from the answer the SUT reports, so the
stream is no longer the answer (stream_matches_output); the token counts still agree.
n_tokens_off_by_one reports one token more than it streams, which is what LoadGen logs as
token_count. A batched first token is still a prefix of the answer, so MLPerf cannot see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ADVERTISED = 4096
CASES: dict[str, tuple[set[str], set[str], bool]] = {
    # name: (failing TEST06 checks, failing strict checks, context probe passes)
    "clean": (set(), set(), True),
    "duplicate_trailing_eos": ({"eos"}, {"strict_eos"}, True),
    "mid_sequence_eos": (set(), {"strict_eos"}, True),
    "wrong_first_token": ({"first_token"}, {"stream_matches_output"}, True),
    "n_tokens_off_by_one": ({"sample_length"}, {"token_count"}, True),
    "batch_first_token": (set(), {"first_token_alone"}, True),
    "enforced_context": (set(), set(), False),
}


def _manifest(tmp: Path, case: str) -> Path:
    from scenarios import resolve_dataset
    from sut import ArtifactManifest, FaultFlags, TimingModel

    faults = FaultFlags(**({case: True} if case in FaultFlags.model_fields else {}))
    m = ArtifactManifest(
        artifact_id=f"compliance-{case}",
        backend="sim",
        model="lpuperf-embedded-sim",
        precision="fp32",
        max_context_tokens=ADVERTISED,
        enforced_context_tokens=ADVERTISED // 2 if case == "enforced_context" else None,
        max_batch=4096,
        timing=TimingModel(prefill_base_s=0.0, prefill_per_token_s=0.0, decode_step_s=0.0),
        target="sim-lpu",
        faults=faults,
        # The artifact's tokenizer is the embedded dataset's: its outputs end in that EOS id.
        eos_token_id=resolve_dataset("embedded").eos_token_id,
    )
    p = tmp / f"{case}.json"
    p.write_text(m.model_dump_json())
    return p


@pytest.fixture(scope="module", params=list(CASES))
def outcome(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import sut
    from compliance import Test06Config, probe_context, run_test06

    case = str(request.param)
    tmp = tmp_path_factory.mktemp(case)
    with sut.spawn_server(["--artifact", str(_manifest(tmp, case))]) as server:  # type: ignore[attr-defined]
        t06 = run_test06(Test06Config(scenario="Server", sut=server.address, qps=400.0, out_dir=tmp, run_id=case))
        ctx = probe_context(server.address)
    yield {"case": case, "test06": t06, "context": ctx, "out": tmp}


def test_exactly_the_matching_checks_fail(outcome: dict[str, Any]) -> None:
    want_t06, want_strict, want_ctx = CASES[outcome["case"]]
    t06 = outcome["test06"]
    assert t06.test06.n_samples >= 50, "TEST06's audit.config must log a sample of the run's outputs"
    assert {c.name for c in t06.test06.checks if not c.passed} == want_t06, t06.test06.message
    assert t06.strict.failed_checks() == want_strict, t06.strict.message
    assert outcome["context"].passed is want_ctx, outcome["context"].message
    assert t06.passed is (not want_t06 and not want_strict)
    assert t06.audit_problem == "", "LoadGen's detail log must show TEST06's audit settings in effect"
    # The strict stream checks really ran over the run's per-query records.
    assert t06.strict.n_queries >= 100 and all(c.status != "skipped" for c in t06.strict.checks)


def test_verify_accuracy_txt_matches_mlperf_lines(outcome: dict[str, Any]) -> None:
    want_t06 = CASES[outcome["case"]][0]
    t06_dir = Path(outcome["test06"].test06_dir)
    assert t06_dir == outcome["out"] / outcome["case"] / "Server" / "TEST06"
    expected = (
        f"First token check pass: {'first_token' not in want_t06}\n"
        f"EOS check pass: {'eos' not in want_t06}\n"
        f"Sample length check pass: {'sample_length' not in want_t06}\n"
        f"TEST06 verification {'failed' if want_t06 else 'complete'}\n"
    )
    assert (t06_dir / "verify_accuracy.txt").read_text() == expected
    assert (t06_dir / "accuracy" / "mlperf_log_accuracy.json").is_file()
    assert (t06_dir / "test06_report.json").is_file() and (t06_dir / "strict_report.json").is_file()
    # The failing samples are named, with a reason, for every failing check.
    for check in outcome["test06"].test06.checks + outcome["test06"].strict.checks:
        if not check.passed:
            assert check.n_failed > 0 and check.failures[0].reason


def test_context_verdict_names_the_first_failing_length(outcome: dict[str, Any]) -> None:
    ctx = outcome["context"]
    assert ctx.advertised_context_tokens == ADVERTISED
    labels = [a.label for a in ctx.attempts]
    assert labels == ["50%", "90%", "99%", "100%", "limit+1"]
    if outcome["case"] == "enforced_context":
        # 50% (2048) fits the enforced 2048; 90% (3686) is the first refused.
        assert ctx.first_failure_tokens == int(ADVERTISED * 0.9)
        assert ctx.message == f"advertised {ADVERTISED}, failed at 3686: status UNAVAILABLE 'max tokens exceeded'"
    else:
        assert ctx.attempts[-1].status == "RESOURCE_EXHAUSTED" and ctx.first_failure_tokens is None
