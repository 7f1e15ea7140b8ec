"""Served access control with real grpc clients on loopback: the bearer token on every RPC but health
(UNAUTHENTICATED otherwise, counted), mTLS client subjects logged once per connection, TLS handshakes
and failed ones counted; bad security files are one line before anything serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import generate_latest

from common import UsageError
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from sut import EmbeddedServer, ServerSecurity, bearer_matches, start_embedded
from tests.tls_pki import Pki, make_pki

TOKEN = "sut-token-3c9e51aa07"
BACKEND = {"kind": "sim", "artifact": "sim-instant", "dataset": "synthetic:8:1"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("secret") / "token"
    f.write_text(TOKEN + "\n", encoding="utf-8")
    return f


@pytest.fixture()
def servers() -> Iterator[list[EmbeddedServer]]:
    started: list[EmbeddedServer] = []
    yield started
    for s in started:
        s.stop()


def _creds(pki: Pki, client: bool = True, token: str | None = None) -> grpc.ChannelCredentials:
    creds = grpc.ssl_channel_credentials(
        pki.ca.read_bytes(),
        pki.client.key.read_bytes() if client else None,
        pki.client.cert.read_bytes() if client else None,
    )
    if token:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
    return creds


def _calls(channel: grpc.Channel) -> tuple[str, str, str]:
    """(health, GetArtifact, Generate) outcome names on one channel."""
    out = []
    for call in (
        lambda: health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10),
        lambda: pb_grpc.InferenceStub(channel).GetArtifact(pb.GetArtifactRequest(), timeout=10),
        lambda: list(
            pb_grpc.InferenceStub(channel).Generate(pb.GenerateRequest(input_ids=[1, 2], max_new_tokens=2), timeout=10)
        ),
    ):
        try:
            call()
            out.append("OK")
        except grpc.RpcError as exc:
            out.append(exc.code().name)
    return out[0], out[1], out[2]


def test_bearer_token_on_a_plaintext_loopback_sut(servers: list[EmbeddedServer], token_file: Path) -> None:
    s = start_embedded(BACKEND, metrics_port=0, security=ServerSecurity(auth_token_file=token_file))
    servers.append(s)
    with grpc.insecure_channel(s.address) as ch:
        assert _calls(ch) == ("OK", "UNAUTHENTICATED", "UNAUTHENTICATED")
        md = (("authorization", "Bearer wrong-token"),)
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.InferenceStub(ch).GetArtifact(pb.GetArtifactRequest(), timeout=10, metadata=md)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and err.value.details() == "invalid bearer token"
        ok = pb_grpc.InferenceStub(ch).GetArtifact(
            pb.GetArtifactRequest(), timeout=10, metadata=(("authorization", f"bearer {TOKEN}"),)
        )
        assert ok.artifact_id == "sim-instant"
    local = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP), grpc.access_token_call_credentials(TOKEN)
    )
    with grpc.secure_channel(s.address, local) as ch:
        assert _calls(ch) == ("OK", "OK", "OK")
    assert s.metrics is not None
    text = generate_latest(s.metrics.registry).decode()
    assert 'lpuperf_sut_auth_failures_total{endpoint="grpc",reason="missing"} 2.0' in text
    assert 'lpuperf_sut_auth_failures_total{endpoint="grpc",reason="invalid"} 1.0' in text
    assert TOKEN not in text


def test_mtls_logs_each_client_subject_once_and_counts_handshakes(
    servers: list[EmbeddedServer], pki: Pki, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sec = ServerSecurity(
        tls_cert=pki.server.cert, tls_key=pki.server.key, tls_client_ca=pki.ca, auth_token_file=token_file
    )
    s = start_embedded(BACKEND, metrics_port=0, security=sec)
    servers.append(s)
    with grpc.secure_channel(s.address, _creds(pki, token=TOKEN)) as ch:
        assert _calls(ch) == ("OK", "OK", "OK")
        assert _calls(ch) == ("OK", "OK", "OK")
    with grpc.secure_channel(s.address, _creds(pki, client=False, token=TOKEN)) as ch:
        assert _calls(ch) == ("UNAVAILABLE", "UNAVAILABLE", "UNAVAILABLE")
    with grpc.secure_channel(s.address, _creds(pki, token="not-the-token")) as ch:
        assert _calls(ch)[1:] == ("UNAUTHENTICATED", "UNAUTHENTICATED")
    logged = [ln for ln in capsys.readouterr().err.splitlines() if "mTLS client" in ln]
    assert len(logged) == 2, logged  # one per connection that got through, not one per RPC
    assert all("CN=lpuperf-harness" in ln for ln in logged)
    assert s.metrics is not None
    text = generate_latest(s.metrics.registry).decode()
    samples = {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in text.splitlines() if ln and ln[0] != "#"}
    assert samples["lpuperf_sut_tls_sessions_total"] == 2.0
    assert samples["lpuperf_sut_tls_handshakes_total"] >= 3.0
    assert samples["lpuperf_sut_tls_handshake_failures"] >= 1.0
    assert samples['lpuperf_sut_auth_failures_total{endpoint="grpc",reason="invalid"}'] == 2.0


def test_bearer_matches_is_exact() -> None:
    token = TOKEN.encode()
    assert bearer_matches(f"Bearer {TOKEN}", token) and bearer_matches(f"bearer  {TOKEN} ", token)
    for bad in ("", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN.upper()}"):
        assert not bearer_matches(bad, token), bad


def test_bad_security_settings_are_one_line(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ValueError, match="--tls-cert and --tls-key"):
        ServerSecurity(tls_cert=pki.server.cert)
    with pytest.raises(ValueError, match="--tls-client-ca: mutual TLS needs"):
        ServerSecurity(tls_client_ca=pki.ca)
    mismatched = ServerSecurity(tls_cert=pki.server.cert, tls_key=pki.client.key)
    with pytest.raises(UsageError, match="not a PEM certificate and its key"):
        mismatched.check_pem_pair()
    empty = tmp_path / "empty"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(UsageError, match="the file is empty"):
        ServerSecurity(auth_token_file=empty).token()


def test_serve_takes_the_token_from_the_environment_and_a_spawned_sut_does_not(
    monkeypatch: pytest.MonkeyPatch, token_file: Path
) -> None:
    import argparse

    from loadgen_harness import fetch_artifact
    from sut import spawn_server
    from sut._cli import add_serve_arguments, server_security_from_args

    monkeypatch.setenv("LPUPERF_AUTH_TOKEN", TOKEN)
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    grpc_side, _ = server_security_from_args(parser.parse_args([]))
    assert grpc_side.auth_token_env == "LPUPERF_AUTH_TOKEN" and grpc_side.token() == TOKEN
    grpc_side, _ = server_security_from_args(parser.parse_args(["--auth-token-file", str(token_file)]))
    assert grpc_side.auth_token_env is None and grpc_side.auth_token_file == token_file
    # A SUT the harness spawns is plaintext and open for its parent, whatever the environment holds.
    with spawn_server(["--artifact", "sim-instant", "--dataset", "synthetic:4:1"]) as child:
        assert fetch_artifact(child.address)["artifact_id"] == "sim-instant"
    with pytest.raises(SystemExit):
        parser.parse_args(["--auth-token", TOKEN])


# --- what serve warns about at start -----------------------------------------------------------------


def _not_yet_valid_cert(directory: Path) -> Path:
    """A self-signed certificate whose validity starts tomorrow."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "future")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    path = directory / "future.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_start_warnings_name_an_expired_or_future_certificate(tmp_path: Path, pki: Pki) -> None:
    from sut._security import certificate_validity_warning

    assert certificate_validity_warning(pki.server.cert, "--tls-cert") is None
    expired = certificate_validity_warning(pki.expired_server.cert, "--tls-cert")
    assert expired is not None and expired.startswith(f"--tls-cert {pki.expired_server.cert}: the certificate expired")
    future = certificate_validity_warning(_not_yet_valid_cert(tmp_path), "--metrics-tls-cert")
    assert future is not None and "is not valid before" in future
    chain = tmp_path / "chain.pem"  # the leaf comes first in a chain file: it is the one judged
    chain.write_bytes(pki.expired_server.cert.read_bytes() + pki.ca.read_bytes())
    assert "expired" in (certificate_validity_warning(chain, "--tls-cert") or "")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n")
    assert certificate_validity_warning(garbage, "--tls-cert") is None  # loading the pair reports it


def test_start_warnings_name_token_and_key_files_others_can_read(tmp_path: Path, pki: Pki) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN, encoding="utf-8")
    key = tmp_path / "server.key"
    key.write_bytes(pki.server.key.read_bytes())
    security = ServerSecurity(tls_cert=pki.expired_server.cert, tls_key=key, auth_token_file=token)
    token.chmod(0o644)
    key.chmod(0o640)
    lines = security.start_warnings()
    assert len(lines) == 3 and "expired" in lines[0]
    assert lines[1].startswith(f"--tls-key {key}: readable by group;") and "chmod 600" in lines[1]
    assert lines[2].startswith(f"--auth-token-file {token}: readable by group and others")
    token.chmod(0o600)
    key.chmod(0o600)
    assert ServerSecurity(tls_cert=pki.server.cert, tls_key=key, auth_token_file=token).start_warnings() == []


def test_a_server_token_grpc_cannot_carry_is_refused_when_read(tmp_path: Path) -> None:
    bad = tmp_path / "token"
    bad.write_text("t\u00f6ken-3c9e51aa07\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"^--auth-token-file: .*: the token holds a non-ASCII character"):
        ServerSecurity(auth_token_file=bad).token()


def test_others_can_read_names_who(tmp_path: Path) -> None:
    from sut._security import others_can_read

    f = tmp_path / "token"
    f.write_text(TOKEN, encoding="utf-8")
    for mode, who in ((0o600, None), (0o640, "group"), (0o604, "others"), (0o644, "group and others")):
        f.chmod(mode)
        assert others_can_read(f) == who, oct(mode)
    assert others_can_read(tmp_path / "missing") is None
