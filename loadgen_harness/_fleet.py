"""A SUT fleet: one gRPC target naming one or more replicas of one artifact, balanced by gRPC itself.

What ``--sut`` accepts (:func:`parse_target`):

* ``host:port``: one SUT, as before (grpc's default resolver; the replica is the address as given);
* ``h1:p1,h2:p2,...``: a static list; names are resolved once and the channel gets an ``ipv4:``
  (or ``ipv6:``) target listing every replica;
* a gRPC target URI: ``ipv4:127.0.0.1:50061,127.0.0.1:50062``, ``ipv6:[::1]:50061,...`` or
  ``dns:///name:port`` (a Kubernetes headless Service answers one A record per ready pod).

The client balances with gRPC's own ``round_robin`` policy, chosen by the channel's service config
(:data:`FLEET_CHANNEL_OPTIONS`); grpc's default ``pick_first`` would send everything to one backend.
round_robin picks only READY subchannels: a replica whose connection breaks leaves the rotation as
soon as the client sees the break, and rejoins once a reconnect attempt succeeds (reconnect backoff
capped at :data:`RECONNECT_MAX_MS`, so a replica restarted on its port is back within about a second).

Before a run the harness resolves the target and asks every replica for its artifact
(:func:`inspect_fleet`): replicas serving different artifacts are refused, naming the odd one, unless
mixed artifacts are allowed (results are then split by artifact).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import socket
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from loadgen_harness._transport import TransportSecurity

ROUND_ROBIN_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
# Reconnect backoff of a broken subchannel: a restarted replica is retried at least once a second.
RECONNECT_MIN_MS = 200
RECONNECT_MAX_MS = 1000
FLEET_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG),
    ("grpc.initial_reconnect_backoff_ms", RECONNECT_MIN_MS),
    ("grpc.min_reconnect_backoff_ms", RECONNECT_MIN_MS),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
    # A dns target re-resolves when a subchannel fails; the default holds answers for 30 s.
    ("grpc.dns_min_time_between_resolutions_ms", 1000),
]
TARGET_FORMS = (
    "host:port, a comma-separated list of host:port, or a gRPC target URI (dns:///name:port, ipv4:a:p,b:q, "
    "ipv6:[a]:p,[b]:q)"
)
TargetKind = Literal["address", "list", "ipv4", "ipv6", "dns"]
HOST_FORMS = (
    "a host name (dot-separated labels of 1-63 letters, digits, '-' or '_') or an IP address ([a:b::c] for IPv6)"
)
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_PORT_LIKE = re.compile(r"\s*[-+]?\d*\s*")


class FleetTarget(BaseModel):
    """A parsed ``--sut`` value: its kind and the endpoints it lists (``host:port`` each)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: str
    kind: TargetKind
    endpoints: tuple[str, ...]

    def channel_target(self) -> str:
        """What the grpc channel gets. A list of names is resolved here (grpc's ipv4:/ipv6: take literals)."""
        if self.kind == "address":
            return self.endpoints[0]
        if self.kind != "list":
            return self.spec
        addresses = [_resolve_one(ep, self.spec) for ep in self.endpoints]
        families = {":" in host for host, _ in (_split(a) for a in addresses)}
        if len(families) > 1:
            raise _run_error(f"sut {self.spec}: a list mixes IPv4 and IPv6 replicas; list one family")
        return ("ipv6:" if families == {True} else "ipv4:") + ",".join(addresses)

    def replica_addresses(self) -> list[str]:
        """One ``host:port`` per replica (a dns target resolved now); RunError when a name does not resolve."""
        return [address for address, _ in self.replicas()]

    def replicas(self) -> list[tuple[str, str]]:
        """(``host:port``, the name it was found by) per replica: the name a TLS certificate is checked against."""
        if self.kind == "address" or self.kind in ("ipv4", "ipv6"):
            return [(ep, _split(ep)[0]) for ep in self.endpoints]
        if self.kind == "list":
            return [(_resolve_one(ep, self.spec), _split(ep)[0]) for ep in self.endpoints]
        host, port = _split(self.endpoints[0])
        infos = _getaddrinfo(host, port, self.spec)
        out: list[str] = []
        for *_, sockaddr in infos:
            addr = _join(str(sockaddr[0]), port)
            if addr not in out:
                out.append(addr)
        if not out:
            raise _run_error(f"sut {self.spec}: '{host}' resolves to no address")
        return [(address, host) for address in out]


def _run_error(message: str) -> Exception:
    from loadgen_harness._run import RunError

    return RunError(message)


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _getaddrinfo(host: str, port: int, spec: str) -> list[Any]:
    """The addresses of ``host``; RunError (one line) when it does not resolve or is no valid name.

    A name the IDNA codec refuses (an empty or over-long label) raises UnicodeError, not OSError.
    """
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _run_error(f"sut {spec}: cannot resolve '{host}' ({exc.strerror or exc})") from None
    except UnicodeError:
        raise _run_error(f"sut {spec}: '{host}' is not a valid host name; expected {HOST_FORMS}") from None


def _resolve_one(endpoint: str, spec: str) -> str:
    host, port = _split(endpoint)
    try:
        ipaddress.ip_address(host)
        return _join(host, port)
    except ValueError:
        pass
    infos = _getaddrinfo(host, port, spec)
    # A name in a list stands for one replica: its first IPv4 address, else its first address.
    v4 = [i for i in infos if i[0] == socket.AF_INET]
    return _join(str((v4 or infos)[0][4][0]), port)


def _host_problem(host: str) -> str | None:
    """What is wrong with ``host`` as a gRPC target's host (None: an IP literal or a well-formed name)."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return None if ipaddress.ip_address(host[1:-1]).version == 6 else "expected an IPv6 address in [ ]"
        except ValueError:
            return "expected an IPv6 address in [ ]"
    try:
        ipaddress.ip_address(host)
        return None if ":" not in host else "expected [address]:port for an IPv6 address"
    except ValueError:
        pass
    if ":" in host:
        return "expected [address]:port for an IPv6 address"
    try:
        ascii_name = host.encode("idna").decode("ascii")  # a non-ASCII name as DNS sees it (xn--...)
    except UnicodeError:
        return f"not a valid host name; expected {HOST_FORMS}"
    name = ascii_name[:-1] if ascii_name.endswith(".") else ascii_name
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return f"not a valid host name; expected {HOST_FORMS}"
    return None


def _check_endpoint(endpoint: str, family: Literal["any", "ipv4", "ipv6"], where: str) -> str:
    pre = f"{where}: " if where else ""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port:
        raise ValueError(f"{pre}expected host:port, got '{endpoint}'")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{pre}expected host:port with a port 1..65535, got '{endpoint}'")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if family != "any":
        try:
            ip = ipaddress.ip_address(bare)
        except ValueError:
            raise ValueError(f"{pre}expected an {family} address literal, got '{host}'") from None
        if (family == "ipv4") != (ip.version == 4):
            raise ValueError(f"{pre}expected an {family} address, got '{host}'")
        if family == "ipv6" and not host.startswith("["):
            raise ValueError(f"{pre}expected [address]:port for IPv6, got '{endpoint}'")
        return endpoint
    problem = _host_problem(host)
    if problem is not None:
        raise ValueError(f"{pre}host '{host}' in '{endpoint}': {problem}")
    return endpoint


def parse_target(text: str) -> FleetTarget:
    """Parse a ``--sut`` value; ValueError (one line) naming what is wrong and the accepted forms."""
    spec = text.strip()
    if not spec:
        raise ValueError(f"expected {TARGET_FORMS}")
    scheme, sep, rest = spec.partition(":")
    if scheme == "dns" and sep:
        # grpc's form: dns:[//authority/]host:port
        name = rest
        if rest.startswith("//"):
            _authority, slash, name = rest[2:].partition("/")
            if not slash or not name:
                raise ValueError(f"expected dns:///name:port, got '{spec}'")
        # grpc's dns resolver defaults the port to 443: a SUT port must be stated.
        _check_endpoint(name, "any", "dns target")
        return FleetTarget(spec=spec, kind="dns", endpoints=(name,))
    if scheme in ("ipv4", "ipv6") and sep:
        endpoints = tuple(rest.split(","))
        for ep in endpoints:
            _check_endpoint(ep, scheme, f"{scheme} target")  # type: ignore[arg-type]
        return FleetTarget(spec=spec, kind=scheme, endpoints=_unique(endpoints, spec))  # type: ignore[arg-type]
    # Another scheme (unix:/path, xds:///name): a bare "name:port" has digits (or a bad number) after its colon.
    if "://" in spec or (sep and scheme.isalpha() and not _PORT_LIKE.fullmatch(rest.split(",")[0]) and ":" not in rest):
        raise ValueError(f"unsupported target '{spec}': expected {TARGET_FORMS}")
    endpoints = tuple(ep.strip() for ep in spec.split(","))
    for ep in endpoints:
        _check_endpoint(ep, "any", "")
    kind: TargetKind = "address" if len(endpoints) == 1 else "list"
    return FleetTarget(spec=spec, kind=kind, endpoints=_unique(endpoints, spec))


def _unique(endpoints: tuple[str, ...], spec: str) -> tuple[str, ...]:
    twice = [ep for ep, n in Counter(endpoints).items() if n > 1]
    if twice:
        raise ValueError(f"'{twice[0]}' is listed twice in '{spec}'")
    return endpoints


def check_target(value: str) -> str:
    """A pydantic validator's view of :func:`parse_target`: the value as given.

    The error is raised as the message itself, without pydantic's "Value error, " in front of it.
    """
    try:
        parse_target(value)
    except ValueError as exc:
        raise PydanticCustomError("sut_target", str(exc)) from None  # no context: braces stay as typed
    return value.strip()


# ---- the replicas behind a target ---------------------------------------------------------------


def artifact_sha256(artifact: dict[str, JsonValue]) -> str:
    """The manifest hash replicas are compared by: sha256 of the manifest's canonical JSON."""
    body = json.dumps(artifact, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class Replica(BaseModel):
    """One replica as GetArtifact answered before the run."""

    model_config = ConfigDict(extra="forbid")

    replica_id: str
    address: str
    artifact_id: str = ""
    artifact_sha256: str
    # The name the replica was found by (a dns target's host): its TLS certificate is checked against it.
    tls_name: str = ""

    def transport(self, transport: TransportSecurity | None) -> TransportSecurity | None:
        """``transport`` for a direct channel to this replica: TLS verifies the name it was found by, not its IP."""
        if transport is None or not transport.tls or transport.tls_server_name or not self.tls_name:
            return transport
        try:
            ipaddress.ip_address(self.tls_name)
            return transport
        except ValueError:
            return transport.model_copy(update={"tls_server_name": self.tls_name})


class Fleet(BaseModel):
    """The replicas behind a run's target, in the order they were resolved (index = records' replica column)."""

    model_config = ConfigDict(extra="forbid")

    target: str
    channel_target: str
    replicas: list[Replica]
    mixed: bool = False

    @property
    def replica_ids(self) -> list[str]:
        return [r.replica_id for r in self.replicas]


def fetch_replica(
    address: str, transport: TransportSecurity | None = None, timeout_s: float = 10.0
) -> tuple[str, dict[str, JsonValue]]:
    """(replica id, artifact manifest as JSON) from one replica's GetArtifact; RunError (one line) when it fails."""
    import grpc
    from google.protobuf.json_format import MessageToDict

    from loadgen_harness._transport import describe_failure, open_channel
    from proto import inference_pb2, inference_pb2_grpc

    try:
        with open_channel(address, transport) as ch:
            stub = inference_pb2_grpc.InferenceStub(ch)
            m = stub.GetArtifact(inference_pb2.GetArtifactRequest(), timeout=timeout_s)
    except grpc.RpcError as exc:
        why = describe_failure(address, transport, exc)
        if why is not None:
            raise _run_error(why) from None
        raise _run_error(
            f"sut {address}: GetArtifact failed, is the SUT up? ({exc.code().name}: {exc.details()})"
        ) from None
    replica_id = m.replica_id or address  # a SUT of another make may not say
    if m.manifest_json:
        try:
            data = json.loads(m.manifest_json)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            return replica_id, data
    m.ClearField("replica_id")  # the replica's id is not part of the artifact
    fields: dict[str, JsonValue] = MessageToDict(m, preserving_proto_field_name=True)
    return replica_id, fields


def inspect_fleet(
    target: str,
    transport: TransportSecurity | None = None,
    *,
    allow_mixed: bool = False,
    addresses: Sequence[str] | None = None,
) -> tuple[Fleet, dict[str, JsonValue]]:
    """Resolve ``target``, ask every replica for its artifact, and check they agree.

    Returns the fleet and the artifact of the majority (the run's artifact). RunError (one line) when a
    replica does not answer, two replicas report one id, or the artifacts differ and ``allow_mixed`` is
    off: the line names the odd replica(s) and both artifacts.
    """
    parsed = parse_target(target)
    channel_target = parsed.channel_target()
    found = [(a, _split(a)[0]) for a in addresses] if addresses is not None else parsed.replicas()
    replicas: list[Replica] = []
    artifacts: dict[str, dict[str, JsonValue]] = {}
    for address, name in found:
        via = Replica(replica_id="", address=address, artifact_sha256="", tls_name=name).transport(transport)
        replica_id, artifact = fetch_replica(address, via)
        digest = artifact_sha256(artifact)
        artifacts.setdefault(digest, artifact)
        aid = artifact.get("artifact_id")
        replicas.append(
            Replica(
                replica_id=replica_id,
                address=address,
                artifact_id=aid if isinstance(aid, str) else "",
                artifact_sha256=digest,
                tls_name=name,
            )
        )
    seen: dict[str, str] = {}
    for r in replicas:
        if r.replica_id in seen:
            raise _run_error(
                f"sut {target}: replicas {seen[r.replica_id]} and {r.address} both report the replica id "
                f"'{r.replica_id}'; give each its own (lpuperf serve --replica-id)"
            )
        seen[r.replica_id] = r.address
    counts = Counter(r.artifact_sha256 for r in replicas)
    # The majority's artifact is the fleet's; on a tie, the first replica's.
    common = max(counts, key=lambda d: (counts[d], -[r.artifact_sha256 for r in replicas].index(d)))
    odd = [r for r in replicas if r.artifact_sha256 != common]
    if odd and not allow_mixed:
        names = ", ".join(f"{r.replica_id} ({r.address})" for r in odd)
        first = odd[0]
        raise _run_error(
            f"sut {target}: replica {names} serves artifact '{first.artifact_id}' (sha256 {first.artifact_sha256[:12]}), "
            f"the other replicas '{artifacts[common].get('artifact_id')}' (sha256 {common[:12]}): one artifact across "
            "the fleet expected; pass --allow-mixed to run anyway and split the results by artifact"
        )
    fleet = Fleet(target=target, channel_target=channel_target, replicas=replicas, mixed=bool(odd))
    return fleet, artifacts[common]
