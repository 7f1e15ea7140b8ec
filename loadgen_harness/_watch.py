"""Watching a fleet's replicas during a run: when each one leaves service and when it comes back.

One daemon thread per replica holds a ``grpc.health.v1.Health/Watch`` stream on its own channel:
the stream ends the moment the replica dies (its connection breaks) or reports NOT_SERVING (it is
draining). Until it answers SERVING again the thread polls ``Check`` every :data:`POLL_S`.

A replica that is stopped (SIGSTOP) or hung rather than dead keeps its connection open and its
Watch stream silent, so a prober thread also sends each replica in service a ``Check`` every
:data:`PROBE_S` with a deadline of :data:`STALL_S`: one that does not answer in time is stalled,
an outage from when that check was sent, until it answers again. Nothing here touches the query
path; the events (on the run's clock) go to results.json's per-replica outages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loadgen_harness._replicas import ReplicaEvent

if TYPE_CHECKING:
    from loadgen_harness._fleet import Replica
    from loadgen_harness._transport import TransportSecurity

POLL_S = 0.1
_CHECK_TIMEOUT_S = 0.5
# A replica in service is asked every PROBE_S; no answer within STALL_S is a stall. Far above what a
# loaded SUT takes to answer a health check (milliseconds), so a busy replica is not called stalled.
PROBE_S = 1.0
STALL_S = 5.0


class ReplicaWatch:
    """Health watches on every replica; ``stop()`` returns the events in time order."""

    def __init__(
        self,
        replicas: Sequence[Replica],
        t0_ns: int,
        transport: TransportSecurity | None = None,
        stall_s: float = STALL_S,
        probe_s: float = PROBE_S,
    ) -> None:
        self.replicas = list(replicas)
        self.t0_ns = t0_ns
        self.transport = transport
        self.stall_s = stall_s
        self.probe_s = probe_s
        self.events: list[ReplicaEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._calls: dict[int, Any] = {}  # replica -> its Watch stream while in service
        self._stubs: dict[int, Any] = {}
        self._stalled: dict[int, float] = {}  # replica -> when the unanswered check was sent (run's clock, s)
        self._threads = [
            threading.Thread(target=self._watch, args=(i, r), name=f"lpuperf-watch-{i}", daemon=True)
            for i, r in enumerate(self.replicas)
        ]
        self._threads.append(threading.Thread(target=self._probe, name="lpuperf-watch-probe", daemon=True))

    def start(self) -> ReplicaWatch:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> list[ReplicaEvent]:
        self._stop.set()
        with self._lock:
            calls = list(self._calls.values())
        for call in calls:
            call.cancel()
        for t in self._threads:
            t.join(timeout=5)
        with self._lock:
            return sorted(self.events, key=lambda e: e.t_s)

    def _now_s(self) -> float:
        return (time.monotonic_ns() - self.t0_ns) / 1e9

    def _note(self, replica: Replica, event: str, detail: str, t_s: float | None = None) -> None:
        t_s = self._now_s() if t_s is None else t_s
        with self._lock:
            self.events.append(
                ReplicaEvent(
                    replica_id=replica.replica_id,
                    address=replica.address,
                    event=event,  # type: ignore[arg-type]
                    t_s=round(t_s, 4),
                    detail=detail,
                )
            )

    def _watch(self, i: int, replica: Replica) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from loadgen_harness._fleet import FLEET_CHANNEL_OPTIONS
        from loadgen_harness._transport import open_channel

        serving = health_pb2.HealthCheckResponse.SERVING
        up = True
        try:
            # The fleet's reconnect backoff: a restarted replica is seen within about a second.
            channel = open_channel(
                replica.address, replica.transport(self.transport), options=list(FLEET_CHANNEL_OPTIONS)
            )
        except Exception:
            return  # the run goes on; only this replica's outages stay unrecorded
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not self._stop.is_set():
                if up:
                    detail = "health watch ended"
                    call = stub.Watch(health_pb2.HealthCheckRequest(service=""))
                    with self._lock:
                        self._calls[i] = call
                        self._stubs[i] = stub  # the prober checks it only while its Watch stream is open
                    try:
                        for resp in call:
                            if resp.status != serving:
                                detail = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
                                break
                    except grpc.RpcError as exc:
                        detail = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
                    finally:
                        with self._lock:
                            self._calls.pop(i, None)
                            self._stubs.pop(i, None)
                            stalled_at = self._stalled.pop(i, None)
                    if self._stop.is_set():
                        return
                    if stalled_at is not None:
                        detail = f"stalled: no answer to a health check within {self.stall_s:g} s"
                    self._note(replica, "failed", detail, stalled_at)
                    up = False
                    continue
                try:
                    resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=_CHECK_TIMEOUT_S)
                    if resp.status == serving:
                        self._note(replica, "recovered", "SERVING")
                        up = True
                        continue
                except grpc.RpcError:
                    pass
                self._stop.wait(POLL_S)

    def _probe(self) -> None:
        """Every ``probe_s``, a deadline-bound Check to each replica in service; a missed deadline is a stall."""
        import grpc
        from grpc_health.v1 import health_pb2

        request = health_pb2.HealthCheckRequest(service="")
        pending: dict[int, tuple[Any, float]] = {}  # replica -> (its Check in flight, when it was sent)
        while not self._stop.wait(self.probe_s):
            with self._lock:
                stubs = dict(self._stubs)
            for i, stub in stubs.items():
                if i not in pending:
                    try:
                        pending[i] = (stub.Check.future(request, timeout=self.stall_s), self._now_s())
                    except (grpc.RpcError, ValueError):  # its channel is closing
                        continue
            for i, (future, sent_s) in list(pending.items()):
                if not future.done():
                    continue
                del pending[i]
                try:
                    code = future.code()
                except grpc.FutureCancelledError:
                    continue
                if code != grpc.StatusCode.DEADLINE_EXCEEDED:
                    continue  # answered (or failed outright: the Watch stream says so itself)
                with self._lock:
                    call = self._calls.get(i)
                    if call is None:
                        continue
                    self._stalled[i] = sent_s
                call.cancel()  # its thread notes the outage and waits for the replica to answer again
        for future, _ in pending.values():
            future.cancel()
