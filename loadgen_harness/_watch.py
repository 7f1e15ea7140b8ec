"""Watching a fleet's replicas during a run: when each one leaves service and when it comes back.

One daemon thread per replica holds a ``grpc.health.v1.Health/Watch`` stream on its own channel:
the stream ends the moment the replica dies (its connection breaks) or reports NOT_SERVING (it is
draining). Until it answers SERVING again the thread polls ``Check`` every :data:`POLL_S`. Nothing
here touches the query path; the events (on the run's clock) go to results.json's per-replica outages.
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


class ReplicaWatch:
    """Health watches on every replica; ``stop()`` returns the events in time order."""

    def __init__(self, replicas: Sequence[Replica], t0_ns: int, transport: TransportSecurity | None = None) -> None:
        self.replicas = list(replicas)
        self.t0_ns = t0_ns
        self.transport = transport
        self.events: list[ReplicaEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._calls: dict[int, Any] = {}
        self._threads = [
            threading.Thread(target=self._watch, args=(i, r), name=f"lpuperf-watch-{i}", daemon=True)
            for i, r in enumerate(self.replicas)
        ]

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

    def _note(self, replica: Replica, event: str, detail: str) -> None:
        t_s = (time.monotonic_ns() - self.t0_ns) / 1e9
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
                    if self._stop.is_set():
                        return
                    self._note(replica, "failed", detail)
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
