"""The one way a run gets its SUT: a running SUT's address, or an embedded SUT in a child process.

:class:`SutTarget` says which. :func:`launch_sut` starts an embedded SUT as ``lpuperf serve --config
JSON`` (the backend config travels as one JSON document, validated here by the backend's own model
before anything starts and again by the child), waits until it is SERVING, fetches its artifact
manifest, and stops it on the way out whatever happens. The child gets SIGTERM if this process dies.

Secrets never travel on the child's command line: a config names the environment variable that holds
an API key (``api_key_env``) and a literal ``api_key`` is refused.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from common import BackendSpec, RegistryError
from loadgen_harness._fleet import Fleet, check_target
from loadgen_harness._transport import TransportSecurity

DEFAULT_BACKEND = "sim"
# Embedded replicas are local processes (demos, tests, plan validation), not a deployment.
MAX_EMBEDDED_REPLICAS = 32


def check_address(value: str) -> str:
    """``host:port`` with a port in 1..65535, or ValueError naming what was expected."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got '{value}'")
    return value


class SutTarget(BaseModel):
    """Where a run's SUT comes from: a running SUT (``address``), else an embedded one built from ``backend``."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None,
        description="a running SUT or fleet: host:port, a list of host:port or a gRPC target URI "
        "(dns:///name:port, ipv4:a:p,b:q); None = spawn one",
    )
    backend: BackendSpec = Field(
        default_factory=dict,
        description="config of the spawned SUT's backend: {'kind': name, ...}; generic options (artifact, "
        "precision, dataset, ...) are mapped by the backend's own model; kind defaults to sim",
    )
    dataset: str | None = Field(default=None, description="dataset the spawned SUT serves unless backend names one")
    start_timeout_s: float = Field(default=120.0, gt=0)
    replicas: int = Field(default=1, ge=1, le=MAX_EMBEDDED_REPLICAS, description="embedded SUT processes to spawn")
    allow_mixed: bool = Field(default=False, description="run against replicas serving different artifacts")
    transport: TransportSecurity = Field(
        default_factory=TransportSecurity, description="TLS, client certificate and token for a running SUT"
    )
    metrics: bool = Field(default=False, description="a spawned SUT also serves its Prometheus metrics (loopback)")

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        return None if v is None else check_target(v)

    @model_validator(mode="after")
    def _one_source(self) -> SutTarget:
        if self.address is not None and self.backend:
            raise ValueError("backend: only for a spawned SUT; drop it or drop the address")
        if self.address is not None and self.replicas > 1:
            raise ValueError("replicas: spawns embedded SUTs; drop it or drop the address (which names the fleet)")
        if self.address is None and self.transport.enabled:
            raise ValueError(
                "transport: TLS and token options reach a running SUT (--sut); a spawned SUT is plaintext on loopback"
            )
        if "api_key" in self.backend:
            # The config reaches the child on its command line (ps, error messages): refuse the key itself.
            raise ValueError("backend.api_key: pass the key through the environment (api_key_env), not in the config")
        return self

    @property
    def embedded(self) -> bool:
        return self.address is None

    def backend_config(self) -> BackendSpec:
        """The config the spawned SUT gets, checked by the backend's model; RunError (one line) when invalid."""
        from loadgen_harness._run import RunError
        from sut import backends

        raw: BackendSpec = {"kind": DEFAULT_BACKEND, **self.backend}
        try:
            model = backends.config_model(str(raw["kind"]))
            if self.dataset is not None and "dataset" not in raw and "dataset" in model.model_fields:
                raw["dataset"] = self.dataset
            backends.parse_config(raw, where="backend")
        except RegistryError as exc:
            raise RunError(str(exc)) from None
        return raw

    def config_json(self) -> str:
        """``lpuperf serve --config`` argument: the backend config as one JSON document."""
        return json.dumps(self.backend_config(), sort_keys=True, separators=(",", ":"))


_CHILD_ERROR = "lpuperf serve: error: "


def child_error_line(text: str, exc: BaseException | None = None) -> str:
    """The one line that says why a spawned SUT did not start: its own error line when it wrote one (what
    follows ``lpuperf serve: error:``), else the last line of the failure."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if _CHILD_ERROR in line:
            return line.split(_CHILD_ERROR, 1)[1]
    return lines[-1] if lines else (exc.__class__.__name__ if exc is not None else "no reason given")


@dataclass
class RunningSut:
    """A SUT that answered: its address (the gRPC target: one SUT or a fleet), its artifact manifest, the
    replicas behind the target, and the child process(es) when it is embedded."""

    address: str
    artifact: dict[str, JsonValue]
    process: Any = None  # sut.ServerProcess for an embedded SUT (the first replica's)
    fleet: Fleet | None = None
    processes: list[Any] = field(default_factory=list)  # every embedded replica's ServerProcess

    @property
    def metrics_addresses(self) -> list[str]:
        """host:port of each embedded replica's metrics exporter (those spawned with ``metrics``)."""
        return [p.metrics_address for p in self.processes if getattr(p, "metrics_address", "")]

    @property
    def embedded(self) -> bool:
        return self.process is not None


@contextlib.contextmanager
def launch_sut(target: SutTarget | None = None) -> Iterator[RunningSut]:
    """Yield a running SUT for ``target`` (default: the embedded sim); an embedded one is always stopped."""
    from loadgen_harness._fleet import inspect_fleet
    from loadgen_harness._run import RunError

    target = target or SutTarget()
    if target.address is not None:
        # Every replica behind the target answers GetArtifact first: one artifact across the fleet.
        fleet, artifact = inspect_fleet(target.address, target.transport, allow_mixed=target.allow_mixed)
        yield RunningSut(fleet.channel_target, artifact, fleet=fleet)
        return
    config = target.config_json()
    import sut

    servers: list[Any] = []
    try:
        # One at a time from this thread: a child's die-with-parent signal is tied to the forking thread.
        for _ in range(target.replicas):
            try:
                servers.append(
                    sut.spawn_server(["--config", config], timeout_s=target.start_timeout_s, metrics=target.metrics)
                )
            except Exception as exc:  # a SUT that cannot start is bad input (artifact, backend options): one line
                raise RunError(f"embedded SUT: {child_error_line(str(exc), exc)}") from None
        addresses = [s.address for s in servers]
        spec = addresses[0] if len(addresses) == 1 else "ipv4:" + ",".join(addresses)
        fleet, artifact = inspect_fleet(spec, addresses=addresses)
        yield RunningSut(fleet.channel_target, artifact, servers[0], fleet=fleet, processes=servers)
    finally:
        for s in servers:
            s.proc.terminate()  # all drain at once, then each is waited for
        for s in servers:
            s.terminate()
