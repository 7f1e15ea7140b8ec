"""How the harness reaches a SUT: plaintext (the default), TLS, mutual TLS, and a bearer token.

Every gRPC channel the harness and the stages above it open to a SUT (the bridge, GetArtifact,
health checks, the context probe) is made by :func:`open_channel` from one
:class:`TransportSecurity`, so a run speaks to a secured SUT the same way everywhere.

The token travels as per-call ``authorization`` metadata (not grpc's call credentials, see
:func:`call_metadata`) on channels that are TLS, or plaintext only to a loopback SUT (grpc's local
credentials refuse any other peer), so a token never crosses a network unencrypted.
It is read from a file or an environment variable when a channel is made, and is never part of the
model, a result or an error line.

A connection that fails before a run becomes one line naming the cause (:func:`describe_failure`).
grpc reports several TLS failures alike ("Socket closed" when the server refused our certificate),
so the line comes from a handshake of Python's ``ssl`` module against the same address with the same
CA, certificate and name, which states the reason (unknown CA, name mismatch, expired, certificate
required or refused). It runs only after a failure, so a working run makes no extra handshake.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common import UsageError, read_secret

if TYPE_CHECKING:
    import grpc

TOKEN_ENV = "LPUPERF_TOKEN"
# gRPC metadata pairs sent with each call (the bearer token).
CallMetadata = tuple[tuple[str, str], ...]
_PREFLIGHT_TIMEOUT_S = 5.0
# The HTTP/2 connection preface and an empty SETTINGS frame: a gRPC server answers with its SETTINGS,
# or closes the connection when it refused our certificate after the TLS 1.3 handshake.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


class TransportSecurity(BaseModel):
    """TLS, client certificate and token settings for the SUT connections of a run (paths, never secrets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tls_ca: Path | None = Field(default=None, description="verify the SUT's certificate against this PEM CA bundle")
    tls_cert: Path | None = Field(default=None, description="client certificate (PEM) for a SUT requiring mTLS")
    tls_key: Path | None = Field(default=None, description="private key (PEM) of tls_cert")
    tls_server_name: str | None = Field(
        default=None, min_length=1, description="name to verify in the SUT's certificate (for IP-addressed SUTs)"
    )
    token_file: Path | None = Field(default=None, description="file holding the bearer token")
    token_env: str | None = Field(default=None, min_length=1, description="environment variable holding the token")

    @model_validator(mode="after")
    def _consistent(self) -> TransportSecurity:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: expected both (the client certificate and its private key)")
        if self.tls_ca is None and (self.tls_cert is not None or self.tls_server_name is not None):
            which = "tls_cert" if self.tls_cert is not None else "tls_server_name"
            raise ValueError(f"{which}: TLS needs tls_ca, the CA that signed the SUT's certificate")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None

    @property
    def has_token(self) -> bool:
        return self.token_file is not None or self.token_env is not None

    @property
    def enabled(self) -> bool:
        return self.tls or self.has_token

    def token(self) -> str | None:
        """The bearer token; UsageError (one line naming the file or variable) for one gRPC metadata cannot carry."""
        return read_secret(self.token_file, self.token_env, "--token-file", bearer_token=True)

    def describe(self) -> str:
        """How connections are made, in words (for logs; never the token)."""
        parts = ["mTLS" if self.tls_cert is not None else "TLS"] if self.tls else ["plaintext"]
        if self.has_token:
            parts.append("bearer token")
        return " + ".join(parts)


def _read_pem(path: Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what}: {path}: file not found") from None
    except OSError as exc:
        raise UsageError(f"{what}: {path}: {exc.strerror or 'cannot read'}") from None
    if b"-----BEGIN " not in data:
        raise UsageError(f"{what}: {path}: expected a PEM file")
    return data


def _check_loadable(security: TransportSecurity) -> None:
    """Load the CA bundle and the client pair with Python's ``ssl`` first: grpc finds the same faults only at
    the first handshake, logs them itself and reports a bare UNAVAILABLE. UsageError naming the flag."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=str(security.tls_ca))
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"--tls-ca: {security.tls_ca}: not a PEM CA bundle ({_ssl_reason(exc)})") from None
    if security.tls_cert is None or security.tls_key is None:
        return
    try:
        ctx.load_cert_chain(str(security.tls_cert), str(security.tls_key))
    except (ssl.SSLError, OSError) as exc:
        reason = _ssl_reason(exc)
        what = (
            "the key does not match the certificate"
            if "MISMATCH" in reason.upper()
            else "not a PEM certificate and its key"
        )
        raise UsageError(f"--tls-cert/--tls-key: {security.tls_cert}, {security.tls_key}: {what} ({reason})") from None


def _ssl_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc.__class__.__name__)


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a gRPC target: ``host:port``, ``dns:///host:port`` or ``ipv4:a:p,b:p`` (the first)."""
    target = address
    if "://" in target:
        target = target.split("://", 1)[1].rsplit("/", 1)[-1]
    elif target.startswith(("ipv4:", "ipv6:")):
        target = target.split(":", 1)[1]
    host, _, port = target.split(",")[0].rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return None
    return host, int(port)


def _is_loopback(address: str) -> bool:
    hp = host_port(address)
    host = hp[0] if hp is not None else ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def channel_credentials(
    address: str, security: TransportSecurity | None
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    """(credentials, extra channel options) for ``address``; credentials None means a plaintext channel.

    UsageError (one line naming the flag) for an unreadable file or a token that would go out unencrypted.
    """
    import grpc

    if security is None or not security.enabled:
        return None, []
    options: list[tuple[str, Any]] = []
    if security.tls:
        assert security.tls_ca is not None
        ca = _read_pem(security.tls_ca, "--tls-ca")
        key = _read_pem(security.tls_key, "--tls-key") if security.tls_key is not None else None
        cert = _read_pem(security.tls_cert, "--tls-cert") if security.tls_cert is not None else None
        _check_loadable(security)
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        if security.tls_server_name:
            options.append(("grpc.ssl_target_name_override", security.tls_server_name))
    elif _is_loopback(address):
        creds = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    else:
        raise UsageError(
            f"--token-file: a token goes only over TLS or to a loopback SUT; {address} is neither (give --tls-ca)"
        )
    security.token()  # a token that cannot be read or carried is refused here, before any channel exists
    return creds, options


def call_metadata(security: TransportSecurity | None) -> CallMetadata | None:
    """The bearer token as per-call metadata (None without a token), read once per channel.

    Not grpc's call credentials: those run a Python plugin on grpc's own threads, which take the GIL
    while holding a grpc lock; closing a channel takes the same lock while holding the GIL, and the two
    deadlock now and then (a run that finished and never exited). Plain metadata runs no Python in grpc.
    """
    token = security.token() if security is not None else None
    return None if token is None else (("authorization", f"Bearer {token}"),)


def open_channel(
    address: str, security: TransportSecurity | None, options: list[tuple[str, Any]] | None = None
) -> grpc.Channel:
    """A blocking grpc channel to ``address`` secured per ``security``; the token rides on every call."""
    import grpc

    from loadgen_harness._call_metadata import with_metadata

    creds, extra = channel_credentials(address, security)
    opts = [*(options or []), *extra]
    channel = (
        grpc.insecure_channel(address, options=opts) if creds is None else grpc.secure_channel(address, creds, opts)
    )
    metadata = call_metadata(security)
    return channel if metadata is None else with_metadata(channel, metadata)


def open_aio_channel(
    address: str, security: TransportSecurity | None, options: list[tuple[str, Any]] | None = None
) -> tuple[grpc.aio.Channel, CallMetadata | None]:
    """A grpc.aio channel to ``address`` secured per ``security`` (the bridge's), and the metadata every call
    must carry (the token; None without one). Passed per call, not as an interceptor: nothing extra per query."""
    import grpc

    creds, extra = channel_credentials(address, security)
    opts = [*(options or []), *extra]
    metadata = call_metadata(security)
    if creds is None:
        return grpc.aio.insecure_channel(address, options=opts), metadata
    return grpc.aio.secure_channel(address, creds, options=opts), metadata


def describe_failure(address: str, security: TransportSecurity | None, exc: grpc.RpcError) -> str | None:
    """One line naming why a call before the run failed for a TLS or token reason; None for other failures."""
    import grpc

    code = exc.code() if hasattr(exc, "code") else None
    details = str(exc.details() if hasattr(exc, "details") else "") or ""
    security = security or TransportSecurity()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if not security.has_token:
            return f"sut {address}: the SUT requires a bearer token (missing token): pass --token-file FILE or set {TOKEN_ENV}"
        return f"sut {address}: the SUT refused the bearer token (wrong token): check --token-file / {TOKEN_ENV}"
    if code != grpc.StatusCode.UNAVAILABLE:
        return None
    reason = tls_preflight(address, security)
    if reason is not None:
        return f"sut {address}: {reason}"
    if "handshake" in details.lower() or "ssl" in details.lower():
        return f"sut {address}: TLS handshake failed ({details.splitlines()[0][-200:]})"
    return None


def tls_preflight(address: str, security: TransportSecurity) -> str | None:
    """Handshake with Python's ``ssl`` as the grpc channel would; the TLS reason it fails, or None."""
    hp = host_port(address)
    if hp is None:
        return None
    host, port = hp
    try:
        raw = socket.create_connection((host, port), timeout=_PREFLIGHT_TIMEOUT_S)
    except OSError:
        return None  # not a TLS matter: the caller's own message says the SUT is unreachable
    with raw:
        if not security.tls:
            return _plaintext_to_tls(raw)
        return _verify(raw, host, security)


def _plaintext_to_tls(raw: socket.socket) -> str | None:
    """Without TLS settings: does the SUT speak TLS? Then say how to reach it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with ctx.wrap_socket(raw, server_hostname=None):
            return "the SUT speaks TLS: pass --tls-ca FILE (the CA that signed its certificate)"
    except (ssl.SSLError, OSError):
        return None


def _verify(raw: socket.socket, host: str, security: TransportSecurity) -> str | None:
    assert security.tls_ca is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_alpn_protocols(["h2"])
    try:
        ctx.load_verify_locations(cafile=str(security.tls_ca))
    except (ssl.SSLError, OSError):
        return f"--tls-ca {security.tls_ca}: not a PEM CA bundle"
    if security.tls_cert is not None and security.tls_key is not None:
        try:
            ctx.load_cert_chain(str(security.tls_cert), str(security.tls_key))
        except (ssl.SSLError, OSError):
            return f"--tls-cert/--tls-key {security.tls_cert}, {security.tls_key}: not a PEM certificate and its key"
    name = security.tls_server_name or host
    try:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(_H2_PREFACE)
            answer = tls.recv(9)
    except ssl.SSLCertVerificationError as exc:
        return _verify_reason(exc, name, security)
    except ssl.SSLError as exc:
        return _alert_reason(exc, security)
    except TimeoutError:
        return None
    except OSError:
        answer = b""
    if answer:
        return None
    if security.tls_cert is None:
        return "the SUT requires a client certificate (mTLS): pass --tls-cert FILE and --tls-key FILE"
    return (
        f"the SUT refused the client certificate {security.tls_cert}: not signed by a CA the SUT trusts, "
        "expired, or not for client use"
    )


def _verify_reason(exc: ssl.SSLCertVerificationError, name: str, security: TransportSecurity) -> str:
    message = str(exc.verify_message or exc.reason or exc)
    low = message.lower()
    if "expired" in low:
        return f"the SUT's certificate has expired (TLS: {message})"
    if "not yet valid" in low:
        return f"the SUT's certificate is not yet valid (TLS: {message})"
    if "hostname mismatch" in low or "ip address mismatch" in low:
        hint = "" if security.tls_server_name else "; pass --tls-server-name with the name in its certificate"
        return f"the SUT's certificate is not valid for the name '{name}' (name mismatch){hint}"
    if "issuer" in low or "self-signed" in low or "self signed" in low:
        return f"the SUT's certificate is not signed by --tls-ca {security.tls_ca} (unknown CA: {message})"
    return f"the SUT's certificate did not verify ({message})"


def _alert_reason(exc: ssl.SSLError, security: TransportSecurity) -> str:
    reason = str(exc.reason or exc).lower()
    if "wrong_version_number" in reason or "record_layer" in reason or "http_request" in reason:
        return "the SUT does not speak TLS (plaintext server?): drop --tls-ca or check the port"
    if "certificate_required" in reason or ("handshake_failure" in reason and security.tls_cert is None):
        return "the SUT requires a client certificate (mTLS): pass --tls-cert FILE and --tls-key FILE"
    if "unknown_ca" in reason or "bad_certificate" in reason or "certificate" in reason:
        return (
            f"the SUT refused the client certificate {security.tls_cert}: not signed by a CA the SUT trusts, "
            "expired, or not for client use"
        )
    return f"TLS handshake failed ({exc.reason or exc.__class__.__name__})"
