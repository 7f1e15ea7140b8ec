"""Energy over the measured window (counters and gauges, source preference) and the host's RAPL reader on a
tmp directory shaped like /sys/class/powercap (the real tree is read only where it exists and is readable)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import RAPL_ROOT, RaplReader, RaplUnavailable, Telemetry, energy_line, energy_over_window


def _telemetry(series: dict[str, list[tuple[float, float]]], target: str = "http://a:1/metrics") -> Telemetry:
    """A Telemetry of one target whose named samples have the given (t_s, value) points."""
    t, sid, v = [], [], []
    for i, points in enumerate(series.values()):
        for ts, val in points:
            t.append(ts)
            sid.append(i)
            v.append(val)
    return Telemetry(
        t_s=np.asarray(t),
        series=np.asarray(sid, dtype=np.uint32),
        value=np.asarray(v),
        series_target=np.zeros(len(series), dtype=np.uint16),
        series_name=list(series),
        series_labels=[{} for _ in series],
        targets=[target],
        replica_ids=[""],
        interval_s=1.0,
    )


def _merge(*tels: Telemetry) -> Telemetry:
    out = tels[0]
    for tel in tels[1:]:
        base = len(out.series_name)
        out = Telemetry(
            t_s=np.concatenate([out.t_s, tel.t_s]),
            series=np.concatenate([out.series, tel.series + base]),
            value=np.concatenate([out.value, tel.value]),
            series_target=np.concatenate([out.series_target, tel.series_target + len(out.targets)]),
            series_name=out.series_name + tel.series_name,
            series_labels=out.series_labels + tel.series_labels,
            targets=out.targets + tel.targets,
            replica_ids=out.replica_ids + tel.replica_ids,
            interval_s=1.0,
        )
    return out


def _records(issue_s: list[float], done_s: list[float], tokens: list[int], status: list[int] | None = None) -> dict:
    n = len(issue_s)
    return {
        "issue_ns": (np.asarray(issue_s) * 1e9).astype(np.int64),
        "done_ns": (np.asarray(done_s) * 1e9).astype(np.int64),
        "n_tokens": np.asarray(tokens, dtype=np.int64),
        "status": np.asarray(status or [0] * n, dtype=np.int32),
    }


RECS = _records([1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [100, 100, 200])  # window 1..5 s, 400 tokens, 3 queries


def test_counter_energy_is_interpolated_at_the_window_ends() -> None:
    # 100 W constant from t=0: a counter read every second, the window 1..5 s holds exactly 400 J.
    tel = _telemetry({"lpuperf_sut_energy_joules_total": [(float(t), 100.0 * t) for t in range(0, 7)]})
    e = energy_over_window(tel, RECS)
    assert e is not None and e.source == "sim"
    assert e.window_s == pytest.approx(4.0) and e.joules == pytest.approx(400.0)
    assert e.average_watts == pytest.approx(100.0)
    assert e.n_queries == 3 and e.output_tokens == 400
    assert e.joules_per_token == pytest.approx(1.0) and e.tokens_per_joule == pytest.approx(1.0)
    assert e.joules_per_query == pytest.approx(400 / 3)
    assert e.queries_per_second_per_watt == pytest.approx((3 / 4) / 100)
    assert e.warnings == []
    assert "400.0 J over 4.0 s" in energy_line(e) and "power model" in energy_line(e)


def test_a_failed_query_counts_in_the_window_not_in_the_per_query_figures() -> None:
    tel = _telemetry({"lpuperf_sut_energy_joules_total": [(float(t), 100.0 * t) for t in range(0, 7)]})
    e = energy_over_window(tel, _records([1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [100, 100, 200], [0, 0, 14]))
    assert e is not None and e.n_queries == 2 and e.output_tokens == 200 and e.joules == pytest.approx(400.0)


def test_counter_reset_counts_from_zero() -> None:
    # The exporter restarted at t=3: the counter drops to 50 (it had drawn 50 J since), then goes on at 100 W.
    pts = [(0.0, 0.0), (1.0, 100.0), (2.0, 200.0), (3.0, 50.0), (4.0, 150.0), (5.0, 250.0), (6.0, 350.0)]
    e = energy_over_window(_telemetry({"lpuperf_sut_energy_joules_total": pts}), RECS)
    assert e is not None and e.joules == pytest.approx(100 + 50 + 100 + 100)


def test_gauge_energy_is_integrated_when_no_counter() -> None:
    # DCGM power only, ramping 100 -> 200 W linearly over 0..6 s: over 1..5 s the mean is 150 W.
    tel = _telemetry({"DCGM_FI_DEV_POWER_USAGE": [(float(t), 100.0 + 100.0 * t / 6) for t in range(0, 7)]})
    e = energy_over_window(tel, RECS)
    assert e is not None and e.source == "dcgm" and e.joules == pytest.approx(600.0)


def test_measured_power_wins_over_the_model_and_replicas_add_up() -> None:
    sim_a = _telemetry({"lpuperf_sut_energy_joules_total": [(0.0, 0.0), (6.0, 600.0)]}, "http://a:1/metrics")
    sim_b = _telemetry({"lpuperf_sut_energy_joules_total": [(0.0, 0.0), (6.0, 1200.0)]}, "http://b:1/metrics")
    e = energy_over_window(_merge(sim_a, sim_b), RECS)
    assert e is not None and e.source == "sim" and e.replicas == 2 and e.joules == pytest.approx(400 + 800)
    dcgm = _telemetry({"DCGM_FI_DEV_POWER_USAGE": [(0.0, 50.0), (6.0, 50.0)]}, "http://gpu:9400/metrics")
    e = energy_over_window(_merge(sim_a, dcgm), RECS)
    assert e is not None and e.source == "dcgm" and e.replicas == 1 and e.joules == pytest.approx(200.0)


def test_no_power_source_or_no_window_gives_none_and_a_short_cover_warns() -> None:
    assert energy_over_window(_telemetry({"vllm:num_requests_waiting": [(0.0, 1.0), (6.0, 1.0)]}), RECS) is None
    tel = _telemetry({"lpuperf_sut_energy_joules_total": [(0.0, 0.0), (6.0, 600.0)]})
    assert energy_over_window(tel, _records([1.0], [-1.0], [0])) is None
    # Planted fault: the scrapes end before the window does -> a warning, not a silent short figure.
    short = _telemetry({"lpuperf_sut_energy_joules_total": [(0.0, 0.0), (3.0, 300.0)]})
    e = energy_over_window(short, RECS)
    assert e is not None and any("do not cover the whole measured window" in w for w in e.warnings)


def _zone(root: Path, name: str, label: str, uj: int, range_uj: int = 1_000_000_000) -> Path:
    z = root / name
    z.mkdir(parents=True)
    (z / "name").write_text(label + "\n")
    (z / "energy_uj").write_text(f"{uj}\n")
    (z / "max_energy_range_uj").write_text(f"{range_uj}\n")
    return z


def test_rapl_reads_package_zones_skips_subzones_and_survives_a_wrap(tmp_path: Path) -> None:
    p0 = _zone(tmp_path, "intel-rapl:0", "package-0", 999_000_000)
    p1 = _zone(tmp_path, "intel-rapl:1", "package-1", 5_000_000)
    _zone(tmp_path, "intel-rapl:0:0", "core", 1)  # inside package-0's count
    (tmp_path / "intel-rapl-mmio:0").mkdir()  # another control type: not a package zone
    reader = RaplReader(tmp_path)
    assert [z.name for z in reader.zones] == ["package-0@intel-rapl:0", "package-1@intel-rapl:1"]
    (p0 / "energy_uj").write_text("1000000\n")  # wrapped: 999 J -> range 1000 J -> 1 J = 2 J drawn
    (p1 / "energy_uj").write_text("8000000\n")  # +3 J
    got = {labels["domain"]: v for _, labels, v in reader.samples()}
    assert got == {"package-0@intel-rapl:0": pytest.approx(2.0), "package-1@intel-rapl:1": pytest.approx(3.0)}
    (p1 / "energy_uj").write_text("9000000\n")
    got = {labels["domain"]: v for _, labels, v in reader.samples()}
    assert got["package-1@intel-rapl:1"] == pytest.approx(4.0)  # a running total


def test_rapl_absent_or_unreadable_is_one_reason(tmp_path: Path) -> None:
    with pytest.raises(RaplUnavailable, match="no intel-rapl:N package zone"):
        RaplReader(tmp_path)
    with pytest.raises(RaplUnavailable, match="missing"):
        RaplReader(tmp_path / "missing")
    z = _zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (z / "energy_uj").unlink()
    with pytest.raises(RaplUnavailable, match="cannot read its energy counter"):
        RaplReader(tmp_path)


def _real_rapl_readable() -> bool:
    try:
        RaplReader(Path(RAPL_ROOT))
        return True
    except RaplUnavailable:
        return False


@pytest.mark.skipif(not _real_rapl_readable(), reason=f"no readable RAPL package zone under {RAPL_ROOT} here")
def test_real_rapl_counts_up() -> None:
    reader = RaplReader(Path(RAPL_ROOT))
    before = sum(v for _, _, v in reader.samples())
    _ = sum(i * i for i in range(300_000))  # some CPU work
    assert sum(v for _, _, v in reader.samples()) >= before
    assert os.path.isdir(RAPL_ROOT)
