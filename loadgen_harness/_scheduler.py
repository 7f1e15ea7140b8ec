"""The one protocol every way of sending a run's queries implements: LoadGen's scenarios, and the load shapes.

``run_benchmark`` owns what every run shares (the SUT and its fleet, the artifact, metrics, the run
directory, health watching, progress, teardown under a time bound, results.json and queries.npz). A
scheduler owns the rest, in this order:

1. ``prepare()``: everything that can be checked before a SUT starts (settings, trace files);
   bad input raises a one-line ``UsageError``;
2. ``open_client(target)``: the stream client that records every query (LoadGen's bridge, or the
   load client);
3. ``execute(client, log_dir)``: send until done or interrupted (SIGINT/SIGTERM end it in seconds);
4. ``finish(res, client, outcome, log_dir)``: the figures and the verdict only this scheduler knows;
5. ``release(outcome)``: free what the scheduler holds (LoadGen's SUT and QSL handles).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import JsonValue

from loadgen_harness._fleet import Fleet
from loadgen_harness._interrupt import TestOutcome
from loadgen_harness._results import OverloadStop, RunResult

if TYPE_CHECKING:  # the client modules import grpc: importing the package must not
    from loadgen_harness._stream_client import StreamClient
    from loadgen_harness._workers import WorkerBridge


@dataclass(frozen=True)
class RunPlan:
    """What a scheduler's ``prepare`` tells the run: how its results are named and sized."""

    scenario: str  # results.json's scenario and the run directory's name
    submittable: bool
    max_new_tokens: int
    expected_queries: int  # sizes the record chunks; nothing is preallocated for it
    target_qps: float | None = None  # stated to the metrics exporter
    sends_dataset: bool = True  # its queries are the dataset's samples: checked against the SUT's context first


@dataclass(frozen=True)
class ClientTarget:
    """The SUT a run's client talks to, once it answered."""

    address: str
    artifact: dict[str, JsonValue]
    fleet: Fleet | None
    metrics: Any
    opener: Callable[[], Awaitable[tuple[Any, Any]]] | None


class Scheduler(Protocol):
    def prepare(self) -> RunPlan: ...

    def open_client(self, target: ClientTarget) -> StreamClient | WorkerBridge: ...

    def execute(self, client: Any, log_dir: Path) -> TestOutcome: ...

    def finish(self, res: RunResult, client: Any, outcome: TestOutcome, log_dir: Path) -> None: ...

    def release(self, outcome: TestOutcome) -> None: ...


def mark_outcome(res: RunResult, outcome: TestOutcome, how_it_ended: str) -> None:
    """A failed or interrupted test: its state, and the reason first among the validity reasons."""
    if outcome.error is not None:
        res.state = "failed"
        res.valid = False
        res.validity_reasons.insert(0, f"{outcome.error_source} failed: {outcome.error!r}")
    if outcome.interrupted_by is not None:
        res.state = "interrupted"
        res.interrupted_by = "SIGTERM" if outcome.interrupted_by == "SIGTERM" else "SIGINT"
        res.valid = False
        res.validity_reasons.insert(
            0, f"interrupted by {res.interrupted_by}: outstanding queries completed as failed; {how_it_ended}"
        )


def mark_overload(res: RunResult, overload: Any) -> None:
    """A run stopped early because its in-flight bound was crossed (``overload``: the client's ``Overload``)."""
    if overload is None:
        return
    res.valid = False
    res.overload = OverloadStop(
        at_s=round(overload.at_ns / 1e9, 3),
        outstanding=overload.outstanding,
        limit=overload.limit,
        completed_ok=res.successful.n_queries if res.successful is not None else 0,
    )
