"""The Prometheus exporter both the SUT and the harness serve: plain HTTP on loopback by default, or
HTTPS with bearer or basic authentication (:class:`ExporterSecurity`).

prometheus-client serves TLS itself but has no authentication, and it runs the TLS handshake in its
accept loop, so one silent client stalls every scrape. This server wraps a registry's WSGI app with a
constant-time credential check and performs each handshake on the connection's own thread, with a
socket timeout. Refused requests are 401 with a ``WWW-Authenticate`` challenge; the expected
credentials are read once from files at start and never logged.
"""

from __future__ import annotations

import base64
import hmac
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pydantic import BaseModel, ConfigDict, model_validator

from common._errors import UsageError
from common._secrets import read_secret, read_secret_file

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# A client that stops mid-handshake or mid-request frees its thread after this long.
CONNECTION_TIMEOUT_S = 10.0


class ExporterSecurity(BaseModel):
    """How a metrics endpoint is protected; all unset (the default) is plain HTTP without auth."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tls_cert: Path | None = None
    tls_key: Path | None = None
    token_file: Path | None = None  # require 'Authorization: Bearer <token in this file>'
    token_env: str | None = None  # or the token in this environment variable (when no token_file)
    basic_auth_file: Path | None = None  # require HTTP basic auth; the file holds 'user:password'

    @model_validator(mode="after")
    def _pairs(self) -> ExporterSecurity:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: expected both (the certificate and its private key) or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def expected_authorizations(self, what: str) -> list[bytes]:
        """The ``Authorization`` header values accepted (none: no auth); UsageError naming a bad file."""
        accepted: list[bytes] = []
        token = read_secret(self.token_file, self.token_env, f"{what} token_file", bearer_token=True)
        if token is not None:
            accepted.append(b"Bearer " + token.encode())
        if self.basic_auth_file is not None:
            pair = read_secret_file(self.basic_auth_file, f"{what} basic_auth_file")
            user, sep, password = pair.partition(":")
            if not sep or not user or not password:
                raise UsageError(f"{what} basic_auth_file: {self.basic_auth_file}: expected one line 'user:password'")
            accepted.append(b"Basic " + base64.b64encode(pair.encode()))
        return accepted

    def ssl_context(self, what: str) -> ssl.SSLContext | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        return server_ssl_context(self.tls_cert, self.tls_key, None, what)


def server_ssl_context(cert: Path, key: Path, client_ca: Path | None, what: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context for ``cert``/``key`` (client certificates required when ``client_ca``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for path, flag in ((cert, "tls_cert"), (key, "tls_key"), (client_ca, "tls_client_ca")):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{what} {flag}: {path}: file not found")
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise UsageError(
            f"{what} tls_cert/tls_key: {cert}, {key}: not a PEM certificate and its key ({reason})"
        ) from None
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(client_ca))
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            raise UsageError(f"{what} tls_client_ca: {client_ca}: not a PEM CA bundle ({reason})") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def authorized(header: str, accepted: Iterable[bytes]) -> bool:
    """Whether ``header`` equals one of ``accepted``, compared in constant time."""
    got = header.strip().encode("latin-1", "replace")
    ok = False
    for value in accepted:
        ok |= hmac.compare_digest(got, value)  # no early exit: every accepted value is compared
    return ok


def _guard(
    app: Callable[..., Iterable[bytes]], accepted: list[bytes], on_refused: Callable[[str], None] | None
) -> Callable[..., Iterable[bytes]]:
    challenge = ", ".join(
        sorted({'Bearer realm="metrics"' if v.startswith(b"Bearer ") else 'Basic realm="metrics"' for v in accepted})
    )

    def guarded(environ: dict[str, object], start_response: Callable[..., Any]) -> Iterable[bytes]:
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        if authorized(header, accepted):
            return app(environ, start_response)
        if on_refused is not None:
            on_refused("missing" if not header else "invalid")
        body = b"401 Unauthorized: this metrics endpoint requires credentials\n"
        start_response(
            "401 Unauthorized",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("WWW-Authenticate", challenge),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    return guarded


class _QuietHandler(WSGIRequestHandler):
    timeout = CONNECTION_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # here, on this connection's thread, not in the accept loop

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (one line per scrape every second would bury everything else)."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    ssl_context: ssl.SSLContext | None = None
    on_tls_failure: Callable[[], None] | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed handshake or a dropped client is the client's problem: counted, not printed as a traceback."""
        if isinstance(sys.exc_info()[1], ssl.SSLError) and self.on_tls_failure is not None:
            self.on_tls_failure()


class MetricsHttpServer:
    """A running exporter: ``port``, ``scheme``, ``close()``."""

    def __init__(self, server: _Server, thread: threading.Thread, scheme: str) -> None:
        self._server = server
        self._thread = thread
        self.scheme = scheme
        self.port = int(server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_registry(
    registry: CollectorRegistry,
    port: int,
    addr: str = "127.0.0.1",
    security: ExporterSecurity | None = None,
    *,
    what: str = "metrics",
    on_refused: Callable[[str], None] | None = None,
    on_tls_failure: Callable[[], None] | None = None,
) -> MetricsHttpServer:
    """Serve ``registry`` on ``addr:port`` (0: a free port) from a daemon thread; OSError if it cannot bind.

    Bad TLS or credential files are a UsageError naming ``what`` and the field, raised before binding.
    """
    from prometheus_client import make_wsgi_app

    security = security or ExporterSecurity()
    context = security.ssl_context(what)
    accepted = security.expected_authorizations(what)
    app = make_wsgi_app(registry)
    if accepted:
        app = _guard(app, accepted, on_refused)

    family, _, _, _, sockaddr = next(
        iter(socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE))
    )

    class Server(_Server):
        address_family = family

    httpd = make_server(str(sockaddr[0]), port, app, Server, handler_class=_QuietHandler)
    httpd.ssl_context = context
    httpd.on_tls_failure = on_tls_failure
    thread = threading.Thread(target=httpd.serve_forever, name=f"lpuperf-{what}-exporter", daemon=True)
    thread.start()
    return MetricsHttpServer(httpd, thread, security.scheme)
