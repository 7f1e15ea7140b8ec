"""Fleet targets and the fleet check: what --sut accepts, how replicas are found, and the one-artifact rule.

The replicas are real gRPC servers on loopback (in-process, each with its own id and artifact).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import sut
from loadgen_harness import RunError
from loadgen_harness._fleet import FLEET_CHANNEL_OPTIONS, artifact_sha256, inspect_fleet, parse_target

DATASET = "synthetic:8:2"


@pytest.mark.parametrize(
    ("spec", "kind", "channel"),
    [
        ("127.0.0.1:50051", "address", "127.0.0.1:50051"),
        ("localhost:50051", "address", "localhost:50051"),  # one SUT: grpc's own resolver, as before
        ("127.0.0.1:1,127.0.0.1:2", "list", "ipv4:127.0.0.1:1,127.0.0.1:2"),
        ("localhost:1,127.0.0.1:2", "list", "ipv4:127.0.0.1:1,127.0.0.1:2"),  # names resolved for ipv4:
        ("ipv4:127.0.0.1:50061,127.0.0.1:50062", "ipv4", "ipv4:127.0.0.1:50061,127.0.0.1:50062"),
        ("ipv6:[::1]:50061,[::1]:50062", "ipv6", "ipv6:[::1]:50061,[::1]:50062"),
        ("dns:///sut-headless.lpuperf.svc:50051", "dns", "dns:///sut-headless.lpuperf.svc:50051"),
        ("dns://10.0.0.10/sut:50051", "dns", "dns://10.0.0.10/sut:50051"),
        ("dns:sut:50051", "dns", "dns:sut:50051"),
    ],
)
def test_accepted_targets(spec: str, kind: str, channel: str) -> None:
    t = parse_target(spec)
    assert t.kind == kind
    assert t.channel_target() == channel


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("nohost", "expected host:port"),
        ("127.0.0.1:0", "expected host:port with a port 1..65535, got '127.0.0.1:0'"),
        ("a:1,b", "expected host:port, got 'b'"),
        ("dns:///sut", "dns target: expected host:port"),  # grpc would default the port to 443
        ("ipv4:localhost:5", "ipv4 address literal"),
        ("ipv4:[::1]:5", "expected an ipv4 address"),
        ("ipv6:::1:5", "[address]:port"),
        ("unix:/tmp/sut.sock", "unsupported target"),
        ("xds:///svc", "unsupported target"),
        ("127.0.0.1:5,127.0.0.1:5", "listed twice"),
    ],
)
def test_refused_targets_name_the_problem(spec: str, why: str) -> None:
    with pytest.raises(ValueError, match="^.*" + why.replace("[", r"\[").replace("]", r"\]")):
        parse_target(spec)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        # Names the IDNA codec refuses: grpc's resolver (and getaddrinfo) raised UnicodeError on them.
        ("dns:///bad..name:50051", "host 'bad..name' in 'bad..name:50051': not a valid host name"),
        ("a..b:5,c:6", "host 'a..b' in 'a..b:5': not a valid host name"),
        ("h\u00e9..x:1", "not a valid host name"),
        ("x" * 64 + ".example:1", "not a valid host name"),
        ("dns:///" + "a." * 130 + "b:1", "not a valid host name"),
        ("exa mple:1", "not a valid host name"),
        ("-lead.example:1", "not a valid host name"),
        ("a/b:1", "not a valid host name"),
        # ports out of range or missing
        ("dns:///name:99999", "dns target: expected host:port with a port 1..65535, got 'name:99999'"),
        ("localhost:-1", "expected host:port with a port 1..65535, got 'localhost:-1'"),
        ("localhost:", "expected host:port, got 'localhost:'"),
        ("ipv6:[::1]:0", "a port 1..65535, got '[::1]:0'"),
        ("ipv4:127.0.0.1:65536", "a port 1..65535, got '127.0.0.1:65536'"),
        # empty names and garbage in address lists
        (":50051", "expected host:port, got ':50051'"),
        ("dns:///:50051", "expected host:port"),
        ("ipv4:", "ipv4 target: expected host:port, got ''"),
        ("ipv4:127.0.0.1:5,garbage", "ipv4 target: expected host:port, got 'garbage'"),
        ("ipv4:127.0.0.1:5,", "ipv4 target: expected host:port, got ''"),
        ("ipv6:[::1]:5,[nope]:6", "ipv6 address literal"),
        ("127.0.0.1:1,,127.0.0.1:2", "expected host:port, got ''"),
        # IPv6 without brackets, IPv4 inside them
        ("::1:5", "expected [address]:port for an IPv6 address"),
        ("[1.2.3.4]:5", "expected an IPv6 address in [ ]"),
    ],
)
def test_malformed_names_ports_and_lists_are_one_value_error(spec: str, why: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_target(spec)
    assert why in str(err.value) and "\n" not in str(err.value)


def test_accepted_names_include_idn_underscores_and_a_trailing_dot() -> None:
    for spec in ("h\u00e9llo.example:1", "my_svc.ns.svc.cluster.local.:50051", "dns:///sut-0.sut:50051", "[::1]:5"):
        parse_target(spec)


def test_a_name_getaddrinfo_refuses_is_a_run_error_not_a_unicode_error() -> None:
    """Resolution itself also turns the IDNA codec's UnicodeError into one line (a name built past parse)."""
    from loadgen_harness._fleet import FleetTarget

    for kind in ("dns", "list"):
        target = FleetTarget(
            spec="x", kind=kind, endpoints=("bad..name:5", "b:6") if kind == "list" else ("bad..name:5",)
        )
        with pytest.raises(RunError, match=r"'bad\.\.name' is not a valid host name"):
            target.replica_addresses()


def test_dns_target_lists_one_replica_per_address() -> None:
    assert parse_target("dns:///127.0.0.1:5").replica_addresses() == ["127.0.0.1:5"]
    with pytest.raises(RunError, match=r"cannot resolve 'no-such-host\.invalid'"):
        parse_target("dns:///no-such-host.invalid:5").replica_addresses()


def test_channel_uses_grpcs_round_robin_through_the_service_config() -> None:
    opts = dict(FLEET_CHANNEL_OPTIONS)
    assert json.loads(opts["grpc.service_config"]) == {"loadBalancingConfig": [{"round_robin": {}}]}
    assert opts["grpc.max_reconnect_backoff_ms"] <= 1000  # a restarted replica rejoins within about a second


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    started: list[Any] = []

    def start(artifact: str = "sim-instant", replica_id: str | None = None) -> Any:
        s = sut.start_embedded({"kind": "sim", "dataset": DATASET, "artifact": artifact}, replica_id=replica_id)
        started.append(s)
        return s

    yield start  # type: ignore[misc]
    for s in started:
        s.stop()


def test_inspect_fleet_asks_every_replica(servers: Any) -> None:
    a, b, c = (servers(replica_id=f"r{i}") for i in range(3))
    spec = f"ipv4:{a.address},{b.address},{c.address}"
    fleet, artifact = inspect_fleet(spec)
    assert fleet.replica_ids == ["r0", "r1", "r2"]
    assert [r.address for r in fleet.replicas] == [a.address, b.address, c.address]
    assert fleet.channel_target == spec and not fleet.mixed
    assert artifact["artifact_id"] == "sim-instant" and "replica_id" not in artifact
    assert {r.artifact_sha256 for r in fleet.replicas} == {artifact_sha256(artifact)}


def test_mixed_artifacts_are_refused_naming_the_odd_replica(servers: Any) -> None:
    a, b, c = servers(replica_id="r0"), servers("sim-fp32", replica_id="odd"), servers(replica_id="r2")
    spec = f"{a.address},{b.address},{c.address}"
    with pytest.raises(RunError) as err:
        inspect_fleet(spec)
    msg = str(err.value)
    assert "replica odd (" in msg and b.address in msg and "r0" not in msg and "r2" not in msg, msg
    assert "'sim-fp32'" in msg and "'sim-instant'" in msg and "--allow-mixed" in msg and "\n" not in msg
    fleet, artifact = inspect_fleet(spec, allow_mixed=True)
    assert fleet.mixed and artifact["artifact_id"] == "sim-instant"  # the majority's is the run's artifact
    assert len({r.artifact_sha256 for r in fleet.replicas}) == 2


def test_two_replicas_with_one_id_are_refused(servers: Any) -> None:
    a, b = servers(replica_id="same"), servers(replica_id="same")
    with pytest.raises(RunError, match="both report the replica id 'same'"):
        inspect_fleet(f"{a.address},{b.address}")


def test_an_unreachable_replica_is_one_line(servers: Any) -> None:
    import socket

    a = servers(replica_id="r0")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(RunError, match=f"sut {dead}: GetArtifact failed"):
        inspect_fleet(f"{a.address},{dead}")


def test_tls_replicas_found_by_name_are_verified_against_that_name(tmp_path: Any) -> None:
    """A dns target resolves to pod IPs; each replica's certificate names the service, not the IP."""
    from loadgen_harness import TransportSecurity
    from sut import ServerSecurity
    from tests.tls_pki import _ca, _leaf, _write_cert, _write_key

    ca = _ca("fleet test CA")
    cert, key = _leaf(ca, "lpuperf-sut", server=True, names=("localhost",))  # no IP in the certificate
    for path, obj in ((tmp_path / "ca.crt", ca[0]), (tmp_path / "s.crt", cert)):
        _write_cert(path, obj)
    _write_key(tmp_path / "s.key", key)
    security = ServerSecurity(tls_cert=tmp_path / "s.crt", tls_key=tmp_path / "s.key")
    servers = [
        sut.start_embedded({"kind": "sim", "dataset": DATASET, "artifact": "sim-instant"}, security=security)
        for _ in range(2)
    ]
    try:
        ports = [s.port for s in servers]
        tls = TransportSecurity(tls_ca=tmp_path / "ca.crt")
        fleet, _ = inspect_fleet(",".join(f"localhost:{p}" for p in ports), tls)
        assert [r.address for r in fleet.replicas] == [f"127.0.0.1:{p}" for p in ports]
        assert {r.tls_name for r in fleet.replicas} == {"localhost"}
        # Planted fault: the same replicas by IP alone, whose certificate does not name it, are refused.
        with pytest.raises(RunError):
            inspect_fleet("ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports), tls)
    finally:
        for s in servers:
            s.stop()
