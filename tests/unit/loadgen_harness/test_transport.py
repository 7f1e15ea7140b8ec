"""The harness's one way to reach a SUT (``TransportSecurity``) against real in-process servers on loopback:
each TLS or token failure of the first call is one line naming its cause; settings that cannot work are
refused before any connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common import UsageError
from loadgen_harness import RunError, SutTarget, TransportSecurity, fetch_artifact
from loadgen_harness._transport import channel_credentials
from sut import EmbeddedServer, ServerSecurity, start_embedded
from tests.tls_pki import Pki, make_pki

TOKEN = "harness-token-81d0c3f5a2"
BACKEND = {"kind": "sim", "artifact": "sim-instant", "dataset": "synthetic:4:1"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def token_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tokens")
    (d / "good").write_text(TOKEN, encoding="utf-8")
    (d / "bad").write_text(TOKEN + "-not", encoding="utf-8")
    return d / "good", d / "bad"


@pytest.fixture(scope="module")
def suts(pki: Pki, token_files: tuple[Path, Path]) -> Iterator[dict[str, EmbeddedServer]]:
    good, _ = token_files
    tls = {"tls_cert": pki.server.cert, "tls_key": pki.server.key}
    started = {
        "plain": start_embedded(BACKEND, security=ServerSecurity(auth_token_file=good)),
        "tls": start_embedded(BACKEND, security=ServerSecurity(**tls, auth_token_file=good)),
        "mtls": start_embedded(BACKEND, security=ServerSecurity(**tls, tls_client_ca=pki.ca, auth_token_file=good)),
        "expired": start_embedded(
            BACKEND, security=ServerSecurity(tls_cert=pki.expired_server.cert, tls_key=pki.expired_server.key)
        ),
    }
    yield started
    for s in started.values():
        s.stop()


def _error(address: str, transport: TransportSecurity) -> str:
    with pytest.raises(RunError) as err:
        fetch_artifact(address, timeout_s=10, transport=transport)
    msg = str(err.value)
    assert "\n" not in msg and TOKEN not in msg
    return msg


def test_working_connections(suts: dict[str, EmbeddedServer], pki: Pki, token_files: tuple[Path, Path]) -> None:
    good, _ = token_files
    client = {"tls_cert": pki.client.cert, "tls_key": pki.client.key}
    cases = [
        ("plain", TransportSecurity(token_file=good)),  # a token in plaintext: loopback only
        ("tls", TransportSecurity(tls_ca=pki.ca, token_file=good)),
        ("tls", TransportSecurity(tls_ca=pki.ca, tls_server_name="localhost", token_file=good)),
        ("mtls", TransportSecurity(tls_ca=pki.ca, **client, token_file=good)),
    ]
    for name, transport in cases:
        assert fetch_artifact(suts[name].address, transport=transport)["artifact_id"] == "sim-instant", name


def test_each_failure_names_its_cause(
    suts: dict[str, EmbeddedServer], pki: Pki, token_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = token_files
    cases = [
        ("tls", TransportSecurity(tls_ca=pki.other_ca, token_file=good), "unknown CA"),
        ("tls", TransportSecurity(tls_ca=pki.ca, tls_server_name="wrong.example", token_file=good), "name mismatch"),
        ("expired", TransportSecurity(tls_ca=pki.ca), "has expired"),
        ("mtls", TransportSecurity(tls_ca=pki.ca, token_file=good), "requires a client certificate"),
        (
            "mtls",
            TransportSecurity(tls_ca=pki.ca, tls_cert=pki.other_client.cert, tls_key=pki.other_client.key),
            "refused the client certificate",
        ),
        ("tls", TransportSecurity(tls_ca=pki.ca), "missing token"),
        ("tls", TransportSecurity(tls_ca=pki.ca, token_file=bad), "wrong token"),
        ("tls", TransportSecurity(token_file=good), "the SUT speaks TLS"),
        ("plain", TransportSecurity(tls_ca=pki.ca, token_file=good), "does not speak TLS"),
        ("plain", TransportSecurity(), "missing token"),
    ]
    monkeypatch.setenv("LPUPERF_TOKEN", TOKEN)  # ignored: the model names no variable
    for name, transport, expected in cases:
        msg = _error(suts[name].address, transport)
        assert msg.startswith(f"sut {suts[name].address}: ") and expected in msg, (name, expected, msg)


def test_token_from_the_environment(suts: dict[str, EmbeddedServer], pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LPUPERF_TOKEN", TOKEN)
    transport = TransportSecurity(tls_ca=pki.ca, token_env="LPUPERF_TOKEN")
    assert fetch_artifact(suts["tls"].address, transport=transport)["artifact_id"] == "sim-instant"


def test_settings_that_cannot_work_are_refused(pki: Pki, token_files: tuple[Path, Path], tmp_path: Path) -> None:
    good, _ = token_files
    with pytest.raises(UsageError, match="a token goes only over TLS or to a loopback SUT"):
        channel_credentials("10.1.2.3:50051", TransportSecurity(token_file=good))
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        TransportSecurity(tls_ca=pki.ca, tls_cert=pki.client.cert)
    with pytest.raises(ValueError, match="TLS needs tls_ca"):
        TransportSecurity(tls_server_name="sut.example")
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello", encoding="utf-8")
    with pytest.raises(UsageError, match=r"--tls-ca: .*expected a PEM file"):
        channel_credentials("127.0.0.1:1", TransportSecurity(tls_ca=not_pem))
    with pytest.raises(ValueError, match="a spawned SUT is plaintext on loopback"):
        SutTarget(transport=TransportSecurity(tls_ca=pki.ca))


def test_a_dns_target_is_reached_and_its_failures_named(
    suts: dict[str, EmbeddedServer], pki: Pki, token_files: tuple[Path, Path]
) -> None:
    good, _ = token_files
    target = f"dns:///localhost:{suts['tls'].port}"
    assert fetch_artifact(target, transport=TransportSecurity(tls_ca=pki.ca, token_file=good))["artifact_id"]
    msg = _error(target, TransportSecurity(tls_ca=pki.other_ca, token_file=good))
    assert "unknown CA" in msg, msg


def test_tls_files_grpc_would_fail_on_are_refused_before_any_connection(pki: Pki, tmp_path: Path) -> None:
    """grpc logs these itself at the first handshake and then reports a bare UNAVAILABLE: refused up front."""
    garbage = tmp_path / "ca.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"^--tls-ca: .*ca\.pem: not a PEM CA bundle"):
        channel_credentials("127.0.0.1:1", TransportSecurity(tls_ca=garbage))
    wrong_key = TransportSecurity(tls_ca=pki.ca, tls_cert=pki.client.cert, tls_key=pki.other_client.key)
    with pytest.raises(UsageError, match=r"^--tls-cert/--tls-key: .*: the key does not match the certificate"):
        channel_credentials("127.0.0.1:1", wrong_key)


def test_a_token_grpc_metadata_cannot_carry_is_refused_when_read(
    suts: dict[str, EmbeddedServer], pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: 'GetArtifact failed, is the SUT up? (UNAVAILABLE: Illegal metadata)' at the first RPC."""
    bad = tmp_path / "token"
    bad.write_text(TOKEN + "\u00e9\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"^--token-file: .*: the token holds a non-ASCII character"):
        fetch_artifact(suts["tls"].address, transport=TransportSecurity(tls_ca=pki.ca, token_file=bad))
    monkeypatch.setenv("LPUPERF_TOKEN", TOKEN + "\x01")
    with pytest.raises(UsageError, match="environment variable LPUPERF_TOKEN: the token holds a control character"):
        TransportSecurity(tls_ca=pki.ca, token_env="LPUPERF_TOKEN").token()
