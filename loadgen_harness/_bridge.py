"""The LoadGen <-> gRPC bridge: the QSL over a dataset, and LoadGen's issue callback feeding a grpc.aio
client on a uvloop thread.

The QSL: "loaded" means a sample's int32 prompt array and its serialised GenerateRequest are resident,
so the issue path does no conversion or allocation beyond the request id.

Hot-path design (the per-token path decides the harness's ceiling):

* The issue callback only copies (id, index) pairs and hands the whole batch to the loop with one
  ``call_soon_threadsafe``. There is no client-side queue: in Server mode LoadGen measures latency
  from the *scheduled* issue time, and a queue here would hide the SUT's delay from it.
* Requests are serialised once per sample at load time; per query only the request id is appended
  (concatenated protobuf messages merge, so ``base + field(1)`` is a valid GenerateRequest).
* The first streamed message goes to ``FirstTokenComplete`` at once (not in Offline); the rest are
  only appended to a list. ``QuerySamplesComplete`` gets the final chunk's ``output_ids`` when the
  SUT sent them, else the concatenated stream. Both buffers live in locals until the call returns.
* Every issued sample is completed exactly once, whatever happens to its RPC or the run: it sits in
  ``_pending`` from issue to completion, and each completion path pops it first (see ``_fail``).
* Each query writes its row of the per-query records through the row's own chunk (``_records``).
* Offline is one query holding every sample; it alone is issued through a bounded pool of workers,
  because opening thousands of streams at once only makes the SUT and the client thrash; no
  latency is measured there, so a client-side limit cannot hide anything.
* What is in flight is bounded (``max_in_flight``, LoadGen's own outstanding-query limit in a Server
  run): a SUT that falls that far behind stops the run early (:class:`Overload`) instead of
  growing the harness without limit.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen_harness._records import RecordChunk
from loadgen_harness._stream_client import CHANNEL_OPTIONS, EMPTY, GENERATE, STOPPED_CODE, StreamClient
from proto import inference_pb2
from scenarios import Dataset

# Kept under their old names: the benches build channels the bridge's way.
_GENERATE = GENERATE
_CHANNEL_OPTIONS = CHANNEL_OPTIONS
_EMPTY = EMPTY
# A query failed by an interrupt: counted under this status, recorded with gRPC's CANCELLED code.
_INTERRUPTED = "INTERRUPTED"
_INTERRUPTED_CODE = STOPPED_CODE
# A query failed because the run stopped early on overload (see Overload); also CANCELLED's code.
OVERLOADED = "OVERLOADED"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def serialise_requests(
    input_ids: Sequence[np.ndarray],
    prompts: Sequence[str] | None,
    max_new_tokens: Sequence[int],
    eos_token_id: int,
    ignore_eos: bool = False,
) -> list[bytes]:
    """One serialised GenerateRequest per sample, without request_id (appended per query).

    ``ignore_eos`` asks for exactly ``max_new_tokens`` (min_new_tokens = max_new_tokens): a fixed
    output length, for load tests that compare with tools that do the same; never for accuracy.
    """
    out: list[bytes] = []
    for i, ids in enumerate(input_ids):
        req = inference_pb2.GenerateRequest(
            input_ids=ids.tolist(),
            prompt_text=prompts[i] if prompts is not None else "",
            max_new_tokens=int(max_new_tokens[i]),
            min_new_tokens=int(max_new_tokens[i]) if ignore_eos else 0,
            eos_token_id=eos_token_id,
        )
        out.append(req.SerializeToString())
    return out


class DatasetQSL:
    """Owns the LoadGen QSL handle; ``requests[i]`` is sample i's request bytes while loaded."""

    def __init__(
        self, dataset: Dataset, max_new_tokens: int, perf_count: int | None = None, ignore_eos: bool = False
    ) -> None:
        import mlperf_loadgen as lg

        self.dataset = dataset
        self.max_new_tokens = max_new_tokens
        self.ignore_eos = ignore_eos
        self.total_count = len(dataset)
        self.perf_count = min(perf_count or self.total_count, self.total_count)
        self.requests: list[bytes] = [b""] * self.total_count
        self.resident: dict[int, np.ndarray] = {}
        self._lg = lg
        self.handle: Any = lg.ConstructQSL(self.total_count, self.perf_count, self._load, self._unload)

    def _load(self, indices: list[int]) -> None:
        ids = [np.ascontiguousarray(self.dataset.input_ids[i], dtype=np.int32) for i in indices]
        prompts = [self.dataset.prompts[i] for i in indices]
        max_new = [self.max_new_tokens] * len(ids)
        reqs = serialise_requests(ids, prompts, max_new, self.dataset.eos_token_id, self.ignore_eos)
        for i, arr, req in zip(indices, ids, reqs, strict=True):
            self.resident[i] = arr
            self.requests[i] = req

    def _unload(self, indices: list[int]) -> None:
        for i in indices:
            self.resident.pop(i, None)
            self.requests[i] = b""

    def destroy(self) -> None:
        if self.handle is not None:
            self._lg.DestroyQSL(self.handle)
            self.handle = None


@dataclass(frozen=True)
class Overload:
    """When LoadGen's outstanding queries crossed the run's in-flight limit (the run then ends early)."""

    at_ns: int  # on the run's clock (queries.npz's)
    outstanding: int
    limit: int


class Bridge(StreamClient):
    """LoadGen's SUT: its issue callback feeds the stream client, every completion goes back to LoadGen.

    Interrupt (``interrupt``, from the thread that got the signal): every query in flight is
    cancelled and completed as failed, each exactly once, and so is every query LoadGen issues
    afterwards, on arrival.

    Overload (``max_in_flight``, equal to LoadGen's ``server_max_async_queries``): once more queries are
    outstanding than that, LoadGen stops issuing and would wait for every one of them, however far
    behind the SUT is. The bridge holds what still arrives (so LoadGen crosses its limit at once), and
    when LoadGen flushes it cancels and fails everything outstanding, so the test ends now
    (``overload`` says when and at how many).

    ``loadgen_done`` / ``abandon`` close the gate to LoadGen: after them no call reaches it (a
    completion after its test returned would crash the process).
    """

    def __init__(
        self,
        address: str,
        requests: list[bytes],
        *,
        offline: bool,
        offline_concurrency: int = 64,
        max_in_flight: int | None = None,
        **client: Any,
    ) -> None:
        """``client``: :class:`StreamClient`'s options (rpc_timeout_s, expected_queries, metrics, transport, ...)."""
        import mlperf_loadgen as lg

        self._lg = lg
        self.requests = requests
        self.offline = offline
        self.offline_concurrency = max(1, offline_concurrency)
        self.max_in_flight = max_in_flight
        self.issued = 0  # samples LoadGen handed over (its issue thread); outstanding = issued - completed
        self.interrupted: str | None = None
        self.overload: Overload | None = None
        self._held: list[int] = []
        self._lg_open = True
        self._offline_q: collections.deque[tuple[int, int]] = collections.deque()
        super().__init__(address, **client)

    @property
    def outstanding(self) -> int:
        """Samples LoadGen issued that are not completed yet (approximate from another thread)."""
        return max(0, self.issued - self.completed)

    # ---- LoadGen callbacks (LoadGen's threads) ----

    def issue(self, samples: list[Any]) -> None:
        # An exception here would unwind through LoadGen's C++ and abort the process: never raise.
        try:
            if not self._lg_open:
                return  # abandoned: the process is on its way out
            t = time.monotonic_ns() - self.t0_ns
            batch = [(s.id, s.index) for s in samples]
            self.issued += len(batch)
            limit = self.max_in_flight
            if limit is not None and self.overload is None and self.issued - self.completed > limit:
                self.overload = Overload(t, self.issued - self.completed, limit)
            self._loop.call_soon_threadsafe(self._dispatch, batch, t)
        except Exception:
            return

    def flush(self) -> None:
        """LoadGen issues nothing more: after an overload, stop everything outstanding so its test ends now."""
        try:
            if self._lg_open and self.overload is not None:
                self._loop.call_soon_threadsafe(self._stop_all, OVERLOADED)
        except Exception:
            return

    # ---- control (any thread) ----

    def interrupt(self, reason: str) -> None:
        """Stop new work: fail everything outstanding, and every later query on arrival."""
        if self.interrupted is None:
            self.interrupted = reason
            self.stopped_ns = time.monotonic_ns() - self.t0_ns  # the signal's time: later health changes are ours
            self._loop.call_soon_threadsafe(self._stop_all, _INTERRUPTED)

    def loadgen_done(self) -> None:
        """LoadGen's test returned: from now on nothing may reach LoadGen."""
        self._lg_open = False

    def abandon(self) -> None:
        """Give up on LoadGen's test (it keeps running until the process exits): stop calling it."""
        self._lg_open = False

    # ---- loop thread ----

    def _dispatch(self, batch: list[tuple[int, int]], issued_ns: int) -> None:
        if self.metrics is not None:
            self.metrics.issued(len(batch))
        if self._stop_status is not None or self.overload is not None:
            for qid, idx in batch:
                self._register(qid, idx, issued_ns)
            qids = [qid for qid, _ in batch]
            if self._stop_status is not None:
                self._fail_many(qids, self._stop_status, STOPPED_CODE)
            else:  # overloaded: held until LoadGen stops issuing (it is over its limit, so at once)
                self._held.extend(qids)
            return
        if self.offline and len(batch) > self.offline_concurrency:
            self._offline_q.extend(batch)
            for _ in range(self.offline_concurrency):
                self._spawn(self._offline_worker(issued_ns))
            return
        for qid, idx in batch:
            # Registered before the task exists: a task cancelled before its first step never runs
            # its own handler, and its query is then completed from ``_pending``.
            chunk, j = self._register(qid, idx, issued_ns)
            self._spawn(self._one(qid, idx, issued_ns, chunk, j))

    async def _offline_worker(self, issued_ns: int) -> None:
        q = self._offline_q
        while q and self._stop_status is None:
            qid, idx = q.popleft()
            chunk, j = self._register(qid, idx, issued_ns)
            await self._one(qid, idx, issued_ns, chunk, j)

    def _fail_leftovers(self, status: str, code: int) -> None:
        """Also queued Offline samples and held queries: no task will complete them."""
        t = time.monotonic_ns() - self.t0_ns
        while self._offline_q:
            qid, idx = self._offline_q.popleft()
            self._register(qid, idx, t)
        self._held.clear()
        super()._fail_leftovers(status, code)

    def _one(self, qid: int, idx: int, issued_ns: int, chunk: RecordChunk, j: int) -> Any:
        """Sample ``idx``'s request with LoadGen's query id appended (concatenated protobuf messages merge)."""
        rid = str(qid).encode()
        return self._stream(qid, self.requests[idx] + b"\x0a" + _varint(len(rid)) + rid, issued_ns, chunk, j)

    def _settle_status(self) -> str:
        return _INTERRUPTED if self.interrupted is not None else "CANCELLED"

    # ---- completions to LoadGen ----

    def _first_token(self, qid: int, ids: Any) -> bool:
        if self.offline or not self._lg_open:
            return False
        lg = self._lg
        first = np.array(ids[:1], dtype=np.int32)
        lg.FirstTokenComplete([lg.QuerySampleResponse(qid, first.ctypes.data, 4)])
        return True

    def _answered(self, qid: int, out: np.ndarray, n_tokens: int, first_sent: bool) -> None:
        if not self._lg_open:
            return
        lg = self._lg
        if not self.offline and not first_sent:
            # The first message had no tokens: report the first answered token as the first token.
            lg.FirstTokenComplete([lg.QuerySampleResponse(qid, out.ctypes.data, 4)])
        lg.QuerySamplesComplete([lg.QuerySampleResponse(qid, out.ctypes.data, out.nbytes, n_tokens)])

    def _failed(self, qid: int, data: np.ndarray, first_sent: bool) -> None:
        """Complete a failed query so LoadGen never waits on it.

        With token latencies LoadGen divides by ``n_tokens - 1`` for TPOT and logs an error for
        ``n_tokens <= 1``; a run whose detail log holds errors is rejected by the submission checker
        regardless of the failure's cause. So a failed query reports the tokens it did receive as
        its data (possibly none) with ``n_tokens = max(2, received)``: LoadGen logs no spurious
        error, and the failure is counted (results.json n_errors / errors_by_status), which marks the
        run not valid. The bytes LoadGen records stay honest: no token is invented.
        """
        if not self._lg_open:
            return
        lg = self._lg
        ptr = data.ctypes.data if data.size else EMPTY.ctypes.data
        if not self.offline and not first_sent:
            lg.FirstTokenComplete([lg.QuerySampleResponse(qid, ptr, min(4, data.nbytes))])
        lg.QuerySamplesComplete([lg.QuerySampleResponse(qid, ptr, data.nbytes, max(2, data.size))])

    def _failed_many(self, qids: list[int]) -> None:
        """Queries that received nothing, in one LoadGen call (interrupts fail thousands)."""
        if not self._lg_open:
            return
        lg = self._lg
        ptr = EMPTY.ctypes.data
        if not self.offline:
            lg.FirstTokenComplete([lg.QuerySampleResponse(qid, ptr, 0) for qid in qids])
        lg.QuerySamplesComplete([lg.QuerySampleResponse(qid, ptr, 0, 2) for qid in qids])
