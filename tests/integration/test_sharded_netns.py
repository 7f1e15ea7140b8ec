"""A 3-shard run across network namespaces, merged: traffic really crosses interfaces, the merge is exact.

The SUT serves in its own namespace; each shard runs ``lpuperf run --load ... --shard I/3 --start-at T``
in a namespace of its own, joined to the SUT's by a veth pair (10.77.I.2 -> 10.77.I.1), as three hosts
would be. ``lpuperf merge`` then builds one run: its record count is the shards' sum, its percentiles
those of the concatenated records. Namespaces need root (``ip netns``); elsewhere the test is skipped
with the reason. Every name carries this run's id, and everything is removed in the fixture's finally.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cli import main
from loadgen_harness import load_query_records, load_results, success_stats

ROOT = Path(__file__).resolve().parents[2]
SHARDS = 3
STEP_LIMIT_S = 30.0  # any one ip command, the SUT's start, the wait for a port file


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=STEP_LIMIT_S, check=False)


@dataclass
class Topology:
    sut_ns: str
    shard_ns: list[str]
    sut_links: list[str]  # the SUT's end of each shard's veth pair

    def sut_address(self, i: int) -> str:
        return f"10.77.{i}.1"

    def rx_bytes(self, i: int) -> int:
        """Bytes the SUT's end of shard i's veth pair received."""
        out = _ip("-n", self.sut_ns, "-s", "-j", "link", "show", "dev", self.sut_links[i])
        return int(json.loads(out.stdout)[0]["stats64"]["rx"]["bytes"])


@pytest.fixture
def topology() -> Iterator[Topology]:
    tag = secrets.token_hex(3)
    probe = f"lpt{tag}p"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        pytest.skip(f"network namespaces unavailable here (ip netns add: {made.stderr.strip() or 'not permitted'})")
    _ip("netns", "del", probe)
    topo = Topology(f"lpt{tag}s", [f"lpt{tag}h{i}" for i in range(SHARDS)], [f"lp{tag}a{i}" for i in range(SHARDS)])
    try:
        for ns in (topo.sut_ns, *topo.shard_ns):
            _check(_ip("netns", "add", ns))
            _check(_ip("-n", ns, "link", "set", "lo", "up"))
        for i, ns in enumerate(topo.shard_ns):
            peer = f"lp{tag}b{i}"
            _check(
                _ip(
                    "link",
                    "add",
                    topo.sut_links[i],
                    "netns",
                    topo.sut_ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    peer,
                    "netns",
                    ns,
                )
            )
            _check(_ip("-n", topo.sut_ns, "addr", "add", f"{topo.sut_address(i)}/30", "dev", topo.sut_links[i]))
            _check(_ip("-n", ns, "addr", "add", f"10.77.{i}.2/30", "dev", peer))
            _check(_ip("-n", topo.sut_ns, "link", "set", topo.sut_links[i], "up"))
            _check(_ip("-n", ns, "link", "set", peer, "up"))
        yield topo
    finally:
        for ns in (topo.sut_ns, *topo.shard_ns):  # deleting a namespace removes its veth ends
            _ip("netns", "del", ns)


def _check(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{' '.join(done.args)}: {done.stderr.strip()}"


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LPUPERF_AUTH_TOKEN", None)
    return env


@pytest.fixture
def sut_in_namespace(topology: Topology, tmp_path: Path) -> Iterator[int]:
    port_file = tmp_path / "sut.port"
    cmd = ["ip", "netns", "exec", topology.sut_ns, sys.executable, "-m", "sut", "serve", "--host", "0.0.0.0"]
    cmd += ["--port", "0", "--port-file", str(port_file), "--dataset", "embedded"]
    log = (tmp_path / "sut.log").open("wb")
    proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STEP_LIMIT_S * 2
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert proc.poll() is None, (tmp_path / "sut.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the SUT did not bind in its namespace"
            time.sleep(0.05)
        yield int(port_file.read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STEP_LIMIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STEP_LIMIT_S)
        log.close()


def test_three_shards_in_their_own_namespaces_merge_exactly(
    topology: Topology, sut_in_namespace: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    start_at = time.time() + 8.0  # room for three interpreters to start and reach the SUT on a busy machine
    procs = []
    for i, ns in enumerate(topology.shard_ns):
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "cli", "run"]
        cmd += ["--sut", f"{topology.sut_address(i)}:{sut_in_namespace}", "--load", "rate:24", "--duration", "3"]
        cmd += ["--shard", f"{i}/{SHARDS}", "--start-at", f"{start_at:.3f}", "--out", str(out), "--run-id", f"s{i}"]
        cmd += ["--no-record", "--metrics-linger", "0"]
        procs.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        text = p.communicate(timeout=120)[0].decode(errors="replace")
        assert p.returncode in (0, 1), text[-2000:]  # 1: not valid (a slow shared machine); records still whole
    dirs = [out / f"s{i}" / "Rate" / "performance" for i in range(SHARDS)]
    shard_results = [load_results(d) for d in dirs]
    # Each shard reached the SUT through its own veth pair, and bytes crossed every one of them.
    assert [r.sut_address for r in shard_results] == [f"10.77.{i}.1:{sut_in_namespace}" for i in range(SHARDS)]
    assert all(topology.rx_bytes(i) > 10_000 for i in range(SHARDS))
    for r in shard_results:
        assert r.shard is not None and r.shard.start_at_unix_ns is not None
        assert abs(r.shard.start_at_unix_ns - start_at * 1e9) < 1e6  # the agreed time, as given (ms digits)
        assert r.shard.started_unix_ns is not None and r.shard.started_unix_ns >= r.shard.start_at_unix_ns
    for r, d in zip(shard_results, dirs, strict=True):  # no query was due before the agreed start
        assert r.shard is not None and r.shard.start_at_unix_ns is not None
        first_due = r.shard.wall_t0_unix_ns + int(load_query_records(d)["issue_ns"].min())
        assert first_due >= r.shard.start_at_unix_ns

    assert main(["merge", *map(str, dirs), "--out", str(out), "--run-id", "merged", "--no-record"]) in (0, 1)
    assert "sharded: not an MLPerf LoadGen run: 3 shards" in capsys.readouterr().out
    merged = load_results(out / "merged" / "Rate" / "performance")
    records = [load_query_records(d) for d in dirs]
    union = success_stats(np.concatenate(records))
    assert merged.n_queries == sum(r.size for r in records) == sum(r.n_queries for r in shard_results) > 30
    assert (merged.ttft_ms, merged.tpot_ms, merged.latency_ms) == (union.ttft_ms, union.tpot_ms, union.latency_ms)
    assert merged.successful is not None and merged.successful.n_queries == union.n_queries
    assert merged.sharded is not None and [r.n_queries for r in merged.sharded.shards] == [r.size for r in records]
    # One SUT behind three addresses: one replica in the merged per-replica table, serving every success.
    assert merged.fleet is not None and len(merged.fleet.replicas) == 1
    assert merged.fleet.replicas[0].n_queries == union.n_queries
    # One machine, one clock: each offset measured through the SUT (against shard 0) is zero within the two
    # measurements' error bounds (plus 5 ms for a busy machine's scheduling between stamp and send).
    rows = merged.sharded.shards
    for row in rows:
        assert row.clock_offset_ms is not None and row.clock_offset_error_ms is not None
        assert abs(row.clock_offset_ms) <= row.clock_offset_error_ms + (rows[0].clock_offset_error_ms or 0) + 5.0
    assert merged.sharded.common_window_s is not None and merged.sharded.common_window_s > 1.0


def test_a_shard_waiting_for_its_start_stops_on_sigint_within_seconds(tmp_path: Path) -> None:
    """Ctrl-C while a shard waits for --start-at: it ends at once with a readable, interrupted run."""
    import signal

    start_at = int(time.time() + 600)
    cmd = [sys.executable, "-m", "cli", "run", "--load", "rate:5", "--duration", "3", "--shard", "0/2"]
    cmd += ["--start-at", str(start_at), "--out", str(tmp_path / "out"), "--run-id", "s0", "--no-record"]
    cmd += ["--metrics-linger", "0"]
    # A background shell (CI) starts children with SIGINT ignored, and that survives exec: restore it.
    proc = subprocess.Popen(
        cmd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    run_dir = tmp_path / "out" / "s0" / "Rate" / "performance"
    try:
        deadline = time.monotonic() + 90
        while not (run_dir / "artifact.json").is_file():  # the SUT answered: the shard is waiting to start
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert time.monotonic() - sent < 10.0  # loose on a busy machine; it takes well under a second
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 130
    res = load_results(run_dir)
    assert res.state == "interrupted" and res.n_queries == 0
    assert res.shard is not None and res.shard.start_at_unix_ns == start_at * 1_000_000_000
    assert res.shard.started_unix_ns is None  # it never began sending
