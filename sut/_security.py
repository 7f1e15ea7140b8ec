"""Access control of a served SUT: TLS or mutual TLS on gRPC, a bearer token on every RPC but health.

:class:`ServerSecurity` holds the file paths (``lpuperf serve --tls-cert/--tls-key/--tls-client-ca/
--auth-token-file``, token also from ``LPUPERF_AUTH_TOKEN``); the token itself is read once at start
and lives only in memory. Nothing set (the default) keeps today's plaintext, open, loopback server.

* TLS: grpc's own ``ssl_server_credentials`` through its dynamic form, whose fetch callback grpc calls
  at the start of every handshake: that is how handshakes are counted, since grpc reports a failed
  one only in its own log. A connection that completes the handshake shows up at its first RPC
  (:class:`PeerLog`), so handshakes minus those is the count of failed ones (a client that does not
  trust the server, a missing or unknown client certificate, or a client gone before its first RPC).
* mTLS: the client certificate's subject is logged once per connection, at its first RPC.
* Token: :class:`BearerTokenInterceptor` compares ``authorization: Bearer <token>`` in constant time
  and answers UNAUTHENTICATED otherwise, before the request is even parsed; the health service stays
  open so load balancers and the launcher can probe it.
"""

from __future__ import annotations

import collections
import datetime as dt
import hmac
import re
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator

from common import UsageError, read_secret

if TYPE_CHECKING:
    import grpc

    from sut._metrics import SutMetrics

AUTH_TOKEN_ENV = "LPUPERF_AUTH_TOKEN"
_HEALTH_PREFIX = "/grpc.health.v1.Health/"
_MAX_PEERS = 10000  # connections remembered for the once-per-connection log; the oldest is forgotten first
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class ServerSecurity(BaseModel):
    """TLS, mTLS and token settings of a served SUT (paths; secrets are read at start)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate signed by this CA (mTLS)
    auth_token_file: Path | None = None
    auth_token_env: str | None = None  # name of the environment variable holding the token

    @model_validator(mode="after")
    def _consistent(self) -> ServerSecurity:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key: expected both (the certificate and its private key)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca: mutual TLS needs the server's own --tls-cert and --tls-key")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def mutual_tls(self) -> bool:
        return self.tls_client_ca is not None

    @property
    def enabled(self) -> bool:
        return self.tls or self.auth_token_file is not None or self.auth_token_env is not None

    def token(self) -> str | None:
        """The bearer token every RPC must carry, or None when none is configured."""
        return read_secret(self.auth_token_file, self.auth_token_env, "--auth-token-file", bearer_token=True)

    def pem_files(self) -> tuple[bytes, bytes, bytes | None]:
        """(key, certificate chain, client CA) as bytes; UsageError naming the flag of an unreadable file."""
        assert self.tls_cert is not None and self.tls_key is not None
        out: list[bytes | None] = []
        for path, flag in (
            (self.tls_key, "--tls-key"),
            (self.tls_cert, "--tls-cert"),
            (self.tls_client_ca, "--tls-client-ca"),
        ):
            if path is None:
                out.append(None)
                continue
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise UsageError(f"{flag}: {path}: {exc.strerror or 'cannot read'}") from None
            if b"-----BEGIN " not in data:
                raise UsageError(f"{flag}: {path}: expected a PEM file")
            out.append(data)
        key, cert, ca = out
        assert key is not None and cert is not None
        return key, cert, ca

    def check_pem_pair(self) -> None:
        """Refuse a certificate/key pair that does not load (one line), before grpc logs its own error."""
        from common import server_ssl_context

        if self.tls_cert is not None and self.tls_key is not None:
            server_ssl_context(self.tls_cert, self.tls_key, self.tls_client_ca, "serve")

    def start_warnings(self) -> list[str]:
        """What works but should not (one line each, for ``serve`` to print at start): a certificate outside
        its validity, clients refuse it; a token or key file that other users can read."""
        lines: list[str] = []
        if self.tls_cert is not None:
            lines += [w for w in [certificate_validity_warning(self.tls_cert, "--tls-cert")] if w]
        lines += [
            w
            for w in (
                file_mode_warning(self.tls_key, "--tls-key"),
                file_mode_warning(self.auth_token_file, "--auth-token-file"),
            )
            if w
        ]
        return lines

    def server_credentials(self, on_handshake: Callable[[], None]) -> grpc.ServerCredentials:
        """grpc TLS credentials (client certificates required with a client CA); ``on_handshake`` per handshake."""
        import grpc

        key, cert, ca = self.pem_files()
        config = grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

        def fetch() -> None:
            on_handshake()
            return None  # keep the current certificates

        return grpc.dynamic_ssl_server_credentials(config, fetch, require_client_authentication=ca is not None)


def others_can_read(path: Path) -> str | None:
    """``'group'``, ``'others'`` or ``'group and others'`` when they may read ``path`` (None: its owner only,
    or the file cannot be inspected)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    who = [name for bit, name in ((0o040, "group"), (0o004, "others")) if mode & bit]
    return " and ".join(who) or None


def file_mode_warning(path: Path | None, flag: str) -> str | None:
    """A line when users other than the owner may read the secret or key in ``path``."""
    who = others_can_read(path) if path is not None else None
    if who is None:
        return None
    return f"{flag} {path}: readable by {who}; a secret or private key should be readable by its owner only (chmod 600)"


def certificate_validity_warning(path: Path, flag: str, now: dt.datetime | None = None) -> str | None:
    """A line when the first certificate in ``path`` is expired or not yet valid (None: valid, or unreadable,
    which loading the pair reports)."""
    try:
        found = _PEM_CERT.search(Path(path).read_bytes())
        if found is None:
            return None
        not_before, not_after = certificate_validity(ssl.PEM_cert_to_DER_cert(found.group().decode("ascii")))
    except (OSError, ValueError, IndexError, UnicodeError):
        return None
    now = now or dt.datetime.now(dt.UTC)
    if now > not_after:
        return f"{flag} {path}: the certificate expired {not_after:%Y-%m-%d %H:%M} UTC; clients will refuse it"
    if now < not_before:
        return f"{flag} {path}: the certificate is not valid before {not_before:%Y-%m-%d %H:%M} UTC; clients will refuse it"
    return None


def certificate_validity(der: bytes) -> tuple[dt.datetime, dt.datetime]:
    """(notBefore, notAfter) of a DER X.509 certificate, read from its TBSCertificate (RFC 5280 4.1).

    The standard library loads certificates but shows their dates only after a handshake, and the
    ``cryptography`` package is not a dependency; the fields sit at a fixed place in the structure.
    ValueError/IndexError for anything that is not one.
    """
    _, body, _ = _der(der, 0)  # Certificate ::= SEQUENCE
    _, pos, _ = _der(der, body)  # tbsCertificate ::= SEQUENCE
    tag, _, end = _der(der, pos)
    if tag == 0xA0:  # [0] version, present from v2 on
        pos = end
    for _ in range(3):  # serialNumber, signature, issuer
        _, _, pos = _der(der, pos)
    tag, validity, _ = _der(der, pos)
    if tag != 0x30:
        raise ValueError("no validity sequence")
    t1, s1, e1 = _der(der, validity)
    t2, s2, e2 = _der(der, e1)
    return _der_time(t1, der[s1:e1]), _der_time(t2, der[s2:e2])


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at ``pos``."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 0 < n <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_time(tag: int, raw: bytes) -> dt.datetime:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: years 50-99 are 19xx (RFC 5280)
        parsed = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
        if parsed.year >= 2050:
            parsed = parsed.replace(year=parsed.year - 100)
    elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        parsed = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("not a time")
    return parsed.replace(tzinfo=dt.UTC)


def bearer_matches(header: str, token: bytes) -> bool:
    """``Bearer <token>`` (scheme in any case), the token compared in constant time."""
    scheme, _, value = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token)


class PeerLog:
    """Connections seen, by peer address: logs an mTLS client's subject and counts sessions, once each."""

    def __init__(self, mutual: bool, metrics: SutMetrics | None, log: Callable[[str], None] | None = None) -> None:
        self.mutual = mutual
        self.metrics = metrics
        self.sessions = 0
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    def note(self, context: Any) -> None:
        """Called at every RPC: cheap for a known connection (one dict lookup)."""
        peer = str(context.peer())
        if peer in self._seen:
            return
        self._seen[peer] = None
        if len(self._seen) > _MAX_PEERS:
            self._seen.popitem(last=False)
        self.sessions += 1
        if self.metrics is not None:
            self.metrics.tls_session()
        if self.mutual:
            auth = context.auth_context() or {}
            subject = b", ".join(auth.get("x509_subject") or [b"(no subject)"]).decode(errors="replace")
            self._log(f"lpuperf serve: mTLS client {peer} connected as '{subject}'")


def _refusing_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that aborts with ``code``; the request stays unparsed."""
    import grpc

    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(code, message)

    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort, response_serializer=serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, response_serializer=serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort, response_serializer=serializer)
    return grpc.unary_unary_rpc_method_handler(abort, response_serializer=serializer)


def bearer_interceptor(token: str, on_refused: Callable[[str], None]) -> grpc.aio.ServerInterceptor:
    """An aio interceptor requiring ``authorization: Bearer <token>`` on every RPC except health."""
    import grpc

    expected = token.encode()

    class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
        async def intercept_service(
            self,
            continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
            handler_call_details: grpc.HandlerCallDetails,
        ) -> grpc.RpcMethodHandler:
            handler = await continuation(handler_call_details)
            method = str(getattr(handler_call_details, "method", ""))
            if handler is None or method.startswith(_HEALTH_PREFIX):
                return handler
            header = ""
            for key, value in getattr(handler_call_details, "invocation_metadata", None) or ():
                if key == "authorization":
                    header = value if isinstance(value, str) else value.decode("latin-1")
                    break
            if bearer_matches(header, expected):
                return handler
            reason = "missing" if not header else "invalid"
            on_refused(reason)
            message = (
                "missing bearer token: send 'authorization: Bearer <token>' metadata"
                if reason == "missing"
                else "invalid bearer token"
            )
            return _refusing_handler(handler, grpc.StatusCode.UNAUTHENTICATED, message)

    return BearerTokenInterceptor()


def noting_health_servicer(peers: PeerLog | None) -> Any:
    """grpc's aio health servicer; with ``peers``, each health RPC also notes its connection."""
    from grpc_health.v1 import health

    if peers is None:
        return health.aio.HealthServicer()
    log = peers

    class NotingHealthServicer(health.aio.HealthServicer):
        async def Check(self, request: Any, context: Any) -> Any:
            log.note(context)
            return await super().Check(request, context)

        async def Watch(self, request: Any, context: Any) -> None:
            log.note(context)
            await super().Watch(request, context)

    return NotingHealthServicer()
