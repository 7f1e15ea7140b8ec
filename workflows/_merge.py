"""``lpuperf merge``: one run built from the shards of a sharded load (``lpuperf run --load ... --shard I/N``).

Every figure of the merged run comes from the union of the shards' per-query records, never from the
shards' summaries: percentiles are computed over every successful query of every shard (an average of
percentiles is not a percentile), and rates are the successful queries completed within the **common
window** (the span in which every shard was sending and completing) divided by its length, which is the
sum of the shards' rates over that window.

Latency needs no clock but the shard's own (due and done times are on one monotonic clock). Putting the
shards on one timeline (for the window and the time series) needs their wall clocks, which may differ
between machines. Each shard's clock is measured against the SUT's, which stamps every request's arrival
and first token: per shard, the query with the shortest network round trip gives its offset as NTP
computes one, ((T2 - T1) + (T3 - T4)) / 2, within half that round trip. When every shard has such a
measurement the timeline is the SUT's clock; otherwise the shards' wall clocks. Both offsets are stated.

The merged run directory is an ordinary load run (results.json, queries.npz, artifact.json): report,
compare, gate, export and history read it as they read any run. Its rows are the shards' in shard order
(``sharded.shards[i].n_queries`` each), its times on the merged timeline. It is labelled "sharded: not
an MLPerf LoadGen run" and is never submittable.
"""

from __future__ import annotations

import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from common import UsageError, atomic_path, first_error_line, write_json_atomic
from loadgen_harness import (
    QUERIES_FILE,
    FleetResult,
    RunResult,
    RunState,
    ShardedRun,
    ShardInfo,
    ShardRow,
    fleet_breakdown,
    goodput,
    inter_token_latency,
    judge_load_run,
    load_query_records,
    load_results,
    reasoning_stats,
    sharded_note,
    success_stats,
)
from workflows._merge_figures import clock_offset_ns, load_figures, shifted, window_rates

RESULTS_NAME = "results.json"
# A wall-clock spread between shards above this is stated as a warning: their common window is uncertain by it.
CLOCK_SPREAD_WARN_MS = 50.0


class ShardMergeError(UsageError):
    """Shards that cannot be merged (missing, from different loads, unreadable): one line naming which."""


@dataclass
class Shard:
    """One shard's run directory, results and records."""

    run_dir: Path
    result: RunResult
    info: ShardInfo
    records: np.ndarray


def find_run_dir(path: Path) -> Path | None:
    """A run directory (results.json in it) given itself or the run-id directory above it; None when absent."""
    if (path / RESULTS_NAME).is_file():
        return path
    found = sorted(p.parent for p in path.glob(f"*/*/{RESULTS_NAME}")) if path.is_dir() else []
    if len(found) > 1:
        raise ShardMergeError(f"{path}: holds {len(found)} runs ({', '.join(str(p) for p in found)}); name one")
    return found[0] if found else None


def wait_for_run_dirs(
    paths: Sequence[Path],
    wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Path]:
    """Each path's run directory, waiting up to ``wait_s`` for shards still running (a merge Job beside them)."""
    deadline = clock() + wait_s
    while True:
        found = [find_run_dir(p) for p in paths]
        missing = [str(p) for p, d in zip(paths, found, strict=True) if d is None]
        if not missing:
            return [d for d in found if d is not None]
        if clock() >= deadline:
            waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
            raise ShardMergeError(f"{missing[0]}: no results.json{waited} (expected a shard's run directory)")
        sleep(min(2.0, max(0.0, deadline - clock())))


def read_shard(run_dir: Path) -> Shard:
    try:
        result = load_results(run_dir)
        records = load_query_records(run_dir)
    except ValidationError as exc:
        raise ShardMergeError(first_error_line(exc, str(run_dir / RESULTS_NAME))) from None
    except (OSError, ValueError) as exc:
        raise ShardMergeError(str(exc).splitlines()[0]) from None
    if result.shard is None or result.load is None:
        raise ShardMergeError(f"{run_dir}: field 'shard': not a shard run (run it with --load ... --shard I/N)")
    return Shard(run_dir, result, result.shard, records)


def check_shards(shards: Sequence[Shard]) -> None:
    """The same sharded load, every shard once: one line naming the first disagreement."""
    first = shards[0]
    count = first.info.count
    assert first.result.load is not None
    for s in shards[1:]:
        assert s.result.load is not None
        for what, mine, theirs in (
            ("shard count", s.info.count, count),
            ("--load", s.result.load.spec, first.result.load.spec),
            ("benchmark", s.result.benchmark, first.result.benchmark),
        ):
            if mine != theirs:
                raise ShardMergeError(f"{s.run_dir}: {what} {mine} differs from {first.run_dir}'s {theirs}")
    for s in shards[1:]:
        if s.result.artifact != first.result.artifact:  # one load against one artifact, or the figures mix two
            name = s.result.artifact.get("artifact_id", "?")
            raise ShardMergeError(
                f"{s.run_dir}: artifact {name} differs from {first.run_dir}'s {first.result.artifact.get('artifact_id', '?')} "
                "(the shards ran against different artifacts)"
            )
    seen = Counter(s.info.index for s in shards)
    twice = [i for i, n in seen.items() if n > 1]
    if twice:
        raise ShardMergeError(f"shard {twice[0]}/{count} given {seen[twice[0]]} times")
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise ShardMergeError(f"shard {missing[0]}/{count} missing: {len(shards)} of {count} shards given")


@dataclass
class Timeline:
    """Each shard's shift onto the merged timeline and how it was chosen."""

    shifts_ns: list[int]
    alignment: str
    offsets_ns: list[float | None]  # shard clock minus shard 0's, measured through the SUT
    errors_ns: list[float | None]


def timeline(shards: Sequence[Shard]) -> Timeline:
    """Where each shard's run clock starts on the merged timeline: on the SUT's clock when every shard's
    offset against it could be measured, else on the shards' wall clocks; zero is the earliest start."""
    measured = [clock_offset_ns(s.records, s.info.wall_t0_unix_ns) for s in shards]
    sut_minus_shard = [m[0] if m is not None else None for m in measured]
    errors = [m[1] if m is not None else None for m in measured]
    walls = [s.info.wall_t0_unix_ns for s in shards]
    if all(o is not None for o in sut_minus_shard):
        starts = [w + o for w, o in zip(walls, sut_minus_shard, strict=True) if o is not None]
        alignment = "the SUT's clock (each shard's wall clock corrected by its measured offset)"
    else:
        starts = [float(w) for w in walls]
        alignment = "the shards' wall clocks (no SUT timestamps to measure their offsets against)"
    base = min(starts)
    ref = sut_minus_shard[0]
    offsets = [None if o is None or ref is None else ref - o for o in sut_minus_shard]
    return Timeline([round(t - base) for t in starts], alignment, offsets, errors)


def merge_shards(paths: Sequence[Path], out_dir: Path, run_id: str | None = None, wait_s: float = 0.0) -> RunResult:
    """Merge the shard runs at ``paths`` into ``out_dir/<run-id>/<scenario>/performance/``; returns its RunResult."""
    if not paths:
        raise ShardMergeError("merge: no shard directories given")
    shards = sorted((read_shard(d) for d in wait_for_run_dirs(paths, wait_s)), key=lambda s: s.info.index)
    check_shards(shards)
    first = shards[0].result
    run_id = run_id or f"merged-{time.strftime('%Y%m%d-%H%M%S')}"
    log_dir = out_dir / run_id / first.scenario / "performance"
    if (log_dir / RESULTS_NAME).exists():
        raise ShardMergeError(f"{log_dir}: a run is already there (choose another --run-id)")
    tl = timeline(shards)
    parts, replica_ids = aligned_parts(shards, tl.shifts_ns)
    records = np.concatenate(parts)
    res = merged_result(shards, parts, records, tl, run_id, log_dir)
    res.fleet = _fleet(shards, records, replica_ids)
    log_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(log_dir / "artifact.json", first.artifact, sort_keys=True)
    save_records(records, log_dir / QUERIES_FILE)
    # results.json last: a directory holding one is a whole run.
    write_json_atomic(log_dir / RESULTS_NAME, res.model_dump(mode="json"))
    return res


def save_records(records: np.ndarray, path: Path) -> None:
    """``queries.npz`` as the harness writes it (what ``np.load`` reads), atomically. Deflate at level 1:
    numpy's savez_compressed (level 6) spent three quarters of a merge compressing, for ~7 % less disk."""
    with (
        atomic_path(path, suffix=".tmp.npz") as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open("records.npy", "w", force_zip64=True) as fh,
    ):
        np.lib.format.write_array(fh, records, allow_pickle=False)


def aligned_parts(shards: Sequence[Shard], shifts_ns: Sequence[int]) -> tuple[list[np.ndarray], list[str]]:
    """Each shard's rows on the merged timeline, replica numbers mapped onto one list of replica ids."""
    replica_ids: list[str] = []
    parts = []
    for shard, shift in zip(shards, shifts_ns, strict=True):
        # In place: the shard's records were read for this merge alone, and a copy per shard would add
        # a second copy of every record to the merge's peak memory.
        rows = shifted(shard.records, shift, copy=False)
        fleet = shard.result.fleet
        if fleet is not None and fleet.replicas:
            for rid in (r.replica_id for r in fleet.replicas):
                if rid not in replica_ids:
                    replica_ids.append(rid)
            lookup = np.array([replica_ids.index(r.replica_id) for r in fleet.replicas] + [-1], dtype=np.int32)
            known = (rows["replica"] >= 0) & (rows["replica"] < len(fleet.replicas))
            rows["replica"] = np.where(known, lookup[np.where(known, rows["replica"], -1)], -1)
        parts.append(rows)
    return parts, replica_ids


def merged_result(
    shards: Sequence[Shard], parts: Sequence[np.ndarray], records: np.ndarray, tl: Timeline, run_id: str, log_dir: Path
) -> RunResult:
    """The merged RunResult: figures over the union of ``records`` (``parts`` concatenated), rates over the common window."""
    first = shards[0].result
    assert first.load is not None
    res = RunResult(
        run_id=run_id,
        scenario=first.scenario,
        mode="performance",
        benchmark=first.benchmark,
        preset=first.preset,
        submittable=False,
        harness_version=first.harness_version,
        log_dir=str(log_dir),
        dataset=first.dataset,
        artifact=first.artifact,
        sut_address=",".join(dict.fromkeys(s.result.sut_address for s in shards)),
        n_queries=int(records.size),
        n_errors=sum(s.result.n_errors for s in shards),
        errors_by_status=dict(sum((Counter(s.result.errors_by_status) for s in shards), Counter())),
        limits=first.limits,
        settings={**first.settings, "shards": len(shards)},
        duration_s=max((s.result.duration_s or 0.0) for s in shards),
    )
    res.state = _state(shards)
    window = _common_window([_span(rows) for rows in parts])
    first_start = min(_started_ns(s, shift) for s, shift in zip(shards, tl.shifts_ns, strict=True))
    res.successful = success_stats(records)
    union_s = res.successful.window_s
    if window is not None:
        n_ok, tokens = window_rates(records, *window)
        span_s = (window[1] - window[0]) / 1e9
        res.successful.window_s = round(span_s, 6)
        res.successful.qps = round(n_ok / span_s, 4)
        res.successful.tokens_per_second = round(tokens / span_s, 4)
    else:
        res.warnings.append("the shards' windows do not overlap: rates are over the union window")
    ok = res.successful
    res.completed_qps, res.tokens_per_second = ok.qps, ok.tokens_per_second
    res.ttft_ms, res.tpot_ms, res.latency_ms = ok.ttft_ms, ok.tpot_ms, ok.latency_ms
    res.itl = inter_token_latency(records)
    res.reasoning = reasoning_stats(records)
    res.goodput = goodput(records, first.limits)
    load_figures(res, shards, records)
    res.sharded = ShardedRun(
        count=len(shards),
        shards=[_row(shards[i], parts[i], window, tl, i, first_start) for i in range(len(shards))],
        alignment=tl.alignment,
        common_window_s=None if window is None else round((window[1] - window[0]) / 1e9, 6),
        union_window_s=union_s,
        clock_offset_spread_ms=_spread_ms(tl.offsets_ns),
    )
    _judge(res, shards)
    return res


def _started_ns(shard: Shard, shift_ns: int) -> int:
    """When the shard began sending, on the merged timeline (its run start when it did not say)."""
    started = shard.info.started_unix_ns
    return shift_ns + (started - shard.info.wall_t0_unix_ns if started is not None else 0)


def _row(
    shard: Shard, rows: np.ndarray, window: tuple[int, int] | None, tl: Timeline, i: int, first_start_ns: int
) -> ShardRow:
    """Shard ``i``'s line of the table: its figures over its own rows, its start and clock against the others'."""
    stats = success_stats(rows)
    qps = tps = None
    if window is not None:
        n_ok, tokens = window_rates(rows, *window)
        span_s = (window[1] - window[0]) / 1e9
        qps, tps = round(n_ok / span_s, 4), round(tokens / span_s, 4)
    offset, error = tl.offsets_ns[i], tl.errors_ns[i]
    return ShardRow(
        index=shard.info.index,
        host=shard.info.host,
        run_dir=str(shard.run_dir),
        n_queries=int(rows.size),
        n_succeeded=stats.n_queries,
        n_failed=stats.n_failed,
        valid=shard.result.valid,
        qps=qps,
        tokens_per_second=tps,
        ttft_p50_ms=stats.ttft_ms.p50,
        ttft_p99_ms=stats.ttft_ms.p99,
        start_offset_ms=round((_started_ns(shard, tl.shifts_ns[i]) - first_start_ns) / 1e6, 3),
        start_late_ms=shard.info.start_late_ms,
        clock_offset_ms=None if offset is None else round(offset / 1e6, 3),
        clock_offset_error_ms=None if error is None else round(error / 1e6, 3),
    )


def _span(rows: np.ndarray) -> tuple[int, int] | None:
    """A shard's window on the merged timeline: its first due query to its last completion."""
    issue, done = rows["issue_ns"], rows["done_ns"]
    if not (issue >= 0).any() or not (done >= 0).any():
        return None
    return int(issue[issue >= 0].min()), int(done[done >= 0].max())


def _common_window(bounds: Sequence[tuple[int, int] | None]) -> tuple[int, int] | None:
    if any(b is None for b in bounds):
        return None
    lo = max(b[0] for b in bounds if b is not None)
    hi = min(b[1] for b in bounds if b is not None)
    return (lo, hi) if hi > lo else None


def _spread_ms(offsets: Sequence[float | None]) -> float | None:
    known = [o for o in offsets if o is not None]
    return round((max(known) - min(known)) / 1e6, 3) if len(known) == len(offsets) and known else None


def _state(shards: Sequence[Shard]) -> RunState:
    states = {s.result.state for s in shards}
    return "failed" if "failed" in states else "interrupted" if "interrupted" in states else "complete"


def _judge(res: RunResult, shards: Sequence[Shard]) -> None:
    """The merged verdict: the load's own basis over the union of records, and every shard's own reasons."""
    first = shards[0].result
    assert first.load is not None and res.load is not None
    judge_load_run(res, res.limits, first.load.validity_basis)
    for s in shards:
        if not s.result.valid:
            reason = s.result.validity_reasons[0] if s.result.validity_reasons else "not valid"
            res.validity_reasons.append(f"shard {s.info.index}: {reason}")
            res.valid = False
        res.warnings += [f"shard {s.info.index}: {w}" for w in s.result.warnings]
    spread = res.sharded.clock_offset_spread_ms if res.sharded is not None else None
    if spread is not None and spread > CLOCK_SPREAD_WARN_MS:
        res.warnings.append(f"the shards' clocks differ by up to {spread:g} ms (measured through the SUT)")
    res.load.note = sharded_note(f"{len(shards)} shards merged")


def _fleet(shards: Sequence[Shard], records: np.ndarray, replica_ids: list[str]) -> FleetResult | None:
    fleets = [s.result.fleet for s in shards if s.result.fleet is not None]
    if not fleets or not replica_ids:
        return None
    known = {r.replica_id: r for f in fleets for r in f.replicas}
    return fleet_breakdown(
        records,
        fleets[0].target,
        replica_ids,
        [known[r].address for r in replica_ids],
        [known[r].artifact_sha256 for r in replica_ids],
        mixed=any(f.mixed_artifacts for f in fleets),
    )
