"""Sharded load runs: one load split over N harness processes (machines), and what each shard records.

``--shard I/N`` runs shard I of a load shape beside LoadGen: the open loop's rate R as an independent
Poisson stream of R/N (the superposition of N independent Poisson streams of R/N is a Poisson stream of
R), a closed loop's concurrency C as C/N (the remainder to the first shards), a trace's requests and a
session source's sessions by sequence number (k mod N == I). A LoadGen scenario is never sharded: MLPerf
runs one LoadGen.

``--start-at TIME`` (ISO 8601 or Unix seconds) makes the shards start sending together. Each shard
records the wall clock at its run clock's zero (``ShardInfo.wall_t0_unix_ns``), so ``lpuperf merge`` can
put every shard's records on one timeline, and how late it actually began.

The models here are the contract between a shard's results.json (``shard``) and a merged run's
(``sharded``); the merge itself lives in ``workflows`` (it reads run directories).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common import UsageError

SHARDED_NOTE = "sharded: not an MLPerf LoadGen run"
_LOAD_NOTE_TAIL = ": latencies are from each query's due time, validity is the stated basis"


def sharded_note(part: str) -> str:
    """results.json ``load.note`` of a shard (``part``: 'shard 0/3') or a merged run ('3 shards merged')."""
    return f"{SHARDED_NOTE} ({part}){_LOAD_NOTE_TAIL}"


# A --start-at further ahead than this is a mistake (a date typed wrong), not a plan.
MAX_START_AHEAD_S = 24 * 3600.0
MAX_SHARDS = 1024


class ShardSpec(BaseModel):
    """Which part of a load this process sends: shard ``index`` of ``count`` (0-based)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0)
    count: int = Field(ge=1, le=MAX_SHARDS)

    @model_validator(mode="after")
    def _index_below_count(self) -> ShardSpec:
        if self.index >= self.count:
            raise ValueError(f"shard index {self.index} must be below the shard count {self.count}")
        return self

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def count_of(self, total: int) -> int:
        """This shard's part of ``total`` items: total // count, one more for the first total % count shards."""
        return total // self.count + (1 if self.index < total % self.count else 0)

    def share(self, total: int, what: str) -> int:
        """:meth:`count_of`, refused (one line) when it leaves this shard nothing to send."""
        part = self.count_of(total)
        if part < 1:
            raise UsageError(f"--shard {self}: {what} {total} is fewer than the {self.count} shards (each needs one)")
        return part


class ShardInfo(BaseModel):
    """A shard run's place in its sharded run (results.json ``shard``)."""

    model_config = ConfigDict(extra="forbid")

    index: int
    count: int
    host: str = Field(default="", description="the machine the shard ran on")
    wall_t0_unix_ns: int = Field(description="wall clock (Unix ns) at the run clock's zero: queries.npz times + this")
    start_at_unix_ns: int | None = Field(default=None, description="the agreed start (--start-at), Unix ns")
    started_unix_ns: int | None = Field(default=None, description="when this shard began sending, Unix ns")
    start_late_ms: float | None = Field(default=None, description="began sending this long after --start-at")


class ShardRow(BaseModel):
    """One shard in a merged run's table: its share and figures, and its clock against the others'."""

    model_config = ConfigDict(extra="forbid")

    index: int
    host: str = ""
    run_dir: str
    n_queries: int = Field(description="queries the shard sent (its rows in the merged queries.npz, in order)")
    n_succeeded: int = 0
    n_failed: int = 0
    valid: bool = False
    qps: float | None = Field(default=None, description="successful queries completed in the common window, per s")
    tokens_per_second: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    start_offset_ms: float = Field(description="began sending this long after the earliest shard (merged timeline)")
    start_late_ms: float | None = Field(default=None, description="began sending this long after --start-at")
    clock_offset_ms: float | None = Field(
        default=None,
        description="the shard's wall clock minus the first shard's, measured through the SUT's timestamps",
    )
    clock_offset_error_ms: float | None = Field(
        default=None, description="bound on that measurement: half the best round trip's network delay"
    )


class ShardedRun(BaseModel):
    """How a merged run was built from its shards (results.json ``sharded``)."""

    model_config = ConfigDict(extra="forbid")

    note: str = SHARDED_NOTE
    count: int
    shards: list[ShardRow]
    alignment: str = Field(description="how the shards' clocks were put on one timeline")
    common_window_s: float | None = Field(
        default=None, description="the span every shard was sending and completing: rates are over it"
    )
    union_window_s: float | None = Field(default=None, description="first due query to last completion, any shard")
    clock_offset_spread_ms: float | None = Field(
        default=None, description="largest minus smallest measured clock offset between shards"
    )


_EPOCH = re.compile(r"^\d+(\.\d+)?$")


def parse_start_at(text: str, now_s: float | None = None) -> int:
    """``--start-at``: ISO 8601 (a zone is required) or Unix seconds -> Unix ns; UsageError when bad or far off."""
    value = text.strip()
    if _EPOCH.match(value):
        at_s = float(value)
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            raise UsageError(
                f"--start-at: expected an ISO 8601 time with a zone (2026-05-01T12:00:00Z) or Unix seconds, got '{text}'"
            ) from None
        if parsed.tzinfo is None:
            raise UsageError(f"--start-at: '{text}' has no time zone (add Z or +00:00: every shard must agree)")
        at_s = parsed.timestamp()
    now = time.time() if now_s is None else now_s
    if at_s - now > MAX_START_AHEAD_S:
        raise UsageError(f"--start-at: '{text}' is {(at_s - now) / 3600:.1f} h ahead (at most 24 h)")
    return round(at_s * 1e9)


def parse_shard(text: str) -> ShardSpec:
    """``--shard I/N`` -> ShardSpec; UsageError (one line) when bad."""
    index, sep, count = text.strip().partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise UsageError(f"--shard: expected I/N (shard I of N, 0-based, e.g. 0/3), got '{text}'")
    i, n = int(index), int(count)
    if not 1 <= n <= MAX_SHARDS:
        raise UsageError(f"--shard {text}: expected 1..{MAX_SHARDS} shards, got {n}")
    if i >= n:
        raise UsageError(f"--shard {text}: the index counts from 0 and must be below {n}")
    return ShardSpec(index=i, count=n)


def wall_at(mono_ns: int) -> int:
    """The wall clock (Unix ns) when the monotonic clock read ``mono_ns`` (both clocks read once, back to back)."""
    wall, mono = time.time_ns(), time.monotonic_ns()
    return wall - (mono - mono_ns)


class ShardClock:
    """A shard run's wall clock: when its run clock's zero was, waiting for --start-at, how late it began."""

    def __init__(self, start_at_unix_ns: int | None) -> None:
        self.start_at_unix_ns = start_at_unix_ns
        self.wall_t0_unix_ns = 0
        self.started_unix_ns: int | None = None

    def opened(self, t0_mono_ns: int) -> None:
        """The client's clock started at monotonic ``t0_mono_ns``: note the wall clock then."""
        self.wall_t0_unix_ns = wall_at(t0_mono_ns)

    async def wait_for_start(self) -> None:
        """Sleep until --start-at (a signal cancels the sleep as it cancels the drive); note the start."""
        if self.start_at_unix_ns is not None:
            # Re-sleep until due: the loop's timers may wake up to a millisecond early.
            while (ahead_ns := self.start_at_unix_ns - time.time_ns()) > 0:
                await asyncio.sleep(min(ahead_ns / 1e9, 60.0))
        self.started_unix_ns = time.time_ns()

    def late_ms(self) -> float | None:
        if self.start_at_unix_ns is None or self.started_unix_ns is None:
            return None
        return round((self.started_unix_ns - self.start_at_unix_ns) / 1e6, 3)

    def late_warning(self) -> list[str]:
        """A warning when sending began well after --start-at (the process started too late to meet it)."""
        late = self.late_ms()
        if late is None or late < LATE_START_WARN_MS:
            return []
        return [f"start-at: began sending {late / 1000:.3f} s after --start-at (the run started too late to meet it)"]

    def info(self, part: ShardSpec) -> ShardInfo:
        return ShardInfo(
            index=part.index,
            count=part.count,
            host=socket.gethostname(),
            wall_t0_unix_ns=self.wall_t0_unix_ns,
            start_at_unix_ns=self.start_at_unix_ns,
            started_unix_ns=self.started_unix_ns,
            start_late_ms=self.late_ms(),
        )


# Sending that begins this long after --start-at is worth a warning (shards then overlap less).
LATE_START_WARN_MS = 100.0
