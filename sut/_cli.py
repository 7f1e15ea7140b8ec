"""``lpuperf serve``: run a SUT until SIGTERM/SIGINT, then drain gracefully."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import UsageError, check_writable_file, quiet_grpc_logs, read_json_object, write_atomic

if TYPE_CHECKING:
    from common import BackendSpec

DEFAULT_GRACE_S = 10.0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="start a gRPC system under test", description=__doc__)
    add_serve_arguments(p)
    p.set_defaults(func=run_serve)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="sim", help="backend kind (default: sim)")
    p.add_argument(
        "--artifact",
        default=None,
        help="artifact preset (sim-fp32, sim-bf16, sim-int8, sim-instant, sim-ctx16k) or a manifest JSON file",
    )
    p.add_argument("--dataset", default=None, help="dataset: embedded | synthetic:N:SEED | path (default: embedded)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051, help="gRPC port (0: a free one)")
    p.add_argument("--port-file", default=None, help="write the bound port here (atomically) once listening")
    p.add_argument(
        "--metrics-port-file",
        default=None,
        help="with --metrics-port: write the metrics port here (atomically) before --port-file is written",
    )
    p.add_argument(
        "--replica-id",
        default=None,
        help="this replica's id in GetArtifact and every stream's final chunk (default host:port; the machine's "
        "name stands in for a wildcard host, e.g. the pod name in Kubernetes)",
    )
    p.add_argument("--chunk-size", type=int, default=None, help="max tokens per streamed message after the first")
    p.add_argument("--fault", action="append", default=[], metavar="NAME", help="plant a test fault (repeatable)")
    p.add_argument("--enforced-context", type=int, default=None, help="context the artifact really enforces")
    p.add_argument("--max-batch", type=int, default=None, help="override the artifact's max batch")
    p.add_argument("--max-context", type=int, default=None, help="override the advertised context (tokens)")
    p.add_argument("--precision", default=None, help="override the artifact's precision (picks the recording)")
    p.add_argument("--prefill-base-s", type=float, default=None, help="override timing: prefill base seconds")
    p.add_argument("--prefill-per-token-s", type=float, default=None, help="override timing: prefill s/token")
    p.add_argument("--decode-step-s", type=float, default=None, help="override timing: decode step seconds")
    p.add_argument(
        "--prefix-cache-tokens",
        type=int,
        default=None,
        metavar="N",
        help="sim: a prefix cache of N tokens (whole blocks, least recently used evicted; 0: off, the default): "
        "a cached prompt block skips its prefill",
    )
    p.add_argument(
        "--prefix-block-tokens",
        type=int,
        default=None,
        metavar="B",
        help="sim: the prefix cache's block size in tokens (default 64)",
    )
    p.add_argument(
        "--tool-call-rate",
        type=float,
        default=None,
        metavar="R",
        help="sim: share of prompts answered with a tool call when the request allows one (0..1, default 0.5)",
    )
    p.add_argument(
        "--tool-call-tokens",
        type=int,
        default=None,
        metavar="N",
        help="sim: length of a tool-call answer in tokens (default 24)",
    )
    p.add_argument(
        "--config",
        default=None,
        help="backend config as a JSON object or a JSON file, validated by the backend's model (merged last); "
        "a key travels by name (api_key_env), never inline",
    )
    p.add_argument("--http", type=int, default=None, metavar="PORT", help="also serve the OpenAI-compatible HTTP API")
    p.add_argument(
        "--http-fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="HTTP front test fault: 429 | 503 | slow:SECONDS, optionally @N or @FRACTION (repeatable)",
    )
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, help="drain grace period in seconds")
    add_serve_security_arguments(p)
    from sut._plugins import add_backend_arguments

    add_backend_arguments(p)  # each backend's own flags (openai: --base-url, --model, ...)


def add_serve_security_arguments(p: argparse.ArgumentParser) -> None:
    """TLS, mTLS and token flags of ``lpuperf serve`` (gRPC, the HTTP front and the metrics endpoint)."""
    from common import refuse_secret_flag, secret_file_arg

    g = p.add_argument_group("access control (default: plaintext and open, on loopback)")
    g.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve TLS with this PEM certificate (chain)")
    g.add_argument("--tls-key", type=Path, metavar="FILE", help="the PEM private key of --tls-cert")
    g.add_argument(
        "--tls-client-ca", type=Path, metavar="FILE", help="require client certificates signed by this CA (mTLS, gRPC)"
    )
    g.add_argument(
        "--auth-token-file",
        type=secret_file_arg,
        metavar="FILE",
        help=f"require 'authorization: Bearer <token>' on every RPC but health and on the HTTP front; the file "
        f"holds the token (or set {AUTH_TOKEN_ENV})",
    )
    g.add_argument("--auth-token", type=refuse_secret_flag, help=argparse.SUPPRESS)
    g.add_argument(
        "--metrics-tls-cert", type=Path, metavar="FILE", help="serve the metrics over HTTPS (default: --tls-cert)"
    )
    g.add_argument("--metrics-tls-key", type=Path, metavar="FILE", help="the key of --metrics-tls-cert")
    g.add_argument(
        "--metrics-token-file",
        type=secret_file_arg,
        metavar="FILE",
        help="require 'Authorization: Bearer <token>' on the metrics endpoint (file holds the token)",
    )
    g.add_argument(
        "--metrics-basic-auth-file",
        type=secret_file_arg,
        metavar="FILE",
        help="require HTTP basic auth on the metrics endpoint (file holds 'user:password')",
    )
    g.add_argument(
        "--metrics-open",
        action="store_true",
        help="serve the metrics without auth even though --auth-token-file is set (by default they then require "
        "that same token)",
    )


AUTH_TOKEN_ENV = "LPUPERF_AUTH_TOKEN"  # also sut._security.AUTH_TOKEN_ENV; here so --help imports no pydantic


def server_security_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    """(sut ServerSecurity, common ExporterSecurity) from ``serve`` flags; UsageError naming a bad flag."""
    import os

    from pydantic import ValidationError

    from common import ExporterSecurity, first_error_line
    from sut._security import ServerSecurity

    env = AUTH_TOKEN_ENV if args.auth_token_file is None and os.environ.get(AUTH_TOKEN_ENV, "").strip() else None
    metrics_auth = args.metrics_token_file is not None or args.metrics_basic_auth_file is not None
    if args.metrics_open and metrics_auth:
        raise UsageError("--metrics-open: contradicts --metrics-token-file/--metrics-basic-auth-file; drop one")
    # A token on the gRPC port guards the metrics too (they name the artifact, the load, the replica) unless
    # the metrics have credentials of their own or the user opens them on purpose.
    inherit = not metrics_auth and not args.metrics_open
    try:
        grpc_side = ServerSecurity(
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            auth_token_file=args.auth_token_file,
            auth_token_env=env,
        )
        own = args.metrics_tls_cert is not None or args.metrics_tls_key is not None
        if own and (args.metrics_tls_cert is None or args.metrics_tls_key is None):
            raise UsageError("--metrics-tls-cert and --metrics-tls-key: expected both (the certificate and its key)")
        metrics_side = ExporterSecurity(
            tls_cert=args.metrics_tls_cert if own else args.tls_cert,
            tls_key=args.metrics_tls_key if own else args.tls_key,
            token_file=args.metrics_token_file if not inherit else args.auth_token_file,
            token_env=env if inherit else None,
            basic_auth_file=args.metrics_basic_auth_file,
        )
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "serve")) from None
    metrics_only = (args.metrics_token_file, args.metrics_basic_auth_file, args.metrics_tls_cert)
    if (any(v is not None for v in metrics_only) or args.metrics_open) and args.metrics_port is None:
        raise UsageError(
            "--metrics-tls-cert/--metrics-token-file/--metrics-basic-auth-file/--metrics-open: expected with "
            "--metrics-port"
        )
    return grpc_side, metrics_side


# Generic flags every backend may take; each backend's config model maps or refuses them.
_GENERIC_OPTIONS = (
    ("artifact", "artifact"),
    ("dataset", "dataset"),
    ("precision", "precision"),
    ("enforced_context", "enforced_context_tokens"),
    ("max_batch", "max_batch"),
    ("max_context", "max_context_tokens"),
    ("prefill_base_s", "prefill_base_s"),
    ("prefill_per_token_s", "prefill_per_token_s"),
    ("decode_step_s", "decode_step_s"),
    ("prefix_cache_tokens", "prefix_cache_tokens"),
    ("prefix_block_tokens", "prefix_block_tokens"),
    ("tool_call_rate", "tool_call_rate"),
    ("tool_call_tokens", "tool_call_tokens"),
)


def read_config_option(value: str, flag: str = "--config") -> BackendSpec:
    """A JSON object given inline or as a file. An inline ``api_key`` is refused: argv is visible in ps."""
    if Path(value).is_file():
        return read_json_object(value, f"{flag} file")
    try:
        raw = json.loads(value)
    except json.JSONDecodeError:
        raise UsageError(f"{flag}: expected a JSON object or a JSON file, got '{value[:80]}'") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{flag}: expected a JSON object")
    if "api_key" in raw:
        raise UsageError(
            f"{flag}: field 'api_key': a key on the command line is visible to other users; "
            "name the environment variable that holds it with api_key_env"
        )
    return raw


def _check_sim_flags(args: argparse.Namespace) -> None:
    """The prefix-cache and tool-call flags' ranges, each refusal naming its flag."""
    import math

    cache, block = args.prefix_cache_tokens, args.prefix_block_tokens
    if cache is not None and cache < 0:
        raise UsageError(f"--prefix-cache-tokens: expected tokens >= 0 (0: no prefix cache), got {cache}")
    if block is not None and block <= 0:
        raise UsageError(f"--prefix-block-tokens: expected a positive number of tokens, got {block}")
    if block is not None and not cache:
        raise UsageError("--prefix-block-tokens: expected together with --prefix-cache-tokens N > 0")
    if cache and cache < (block or 64):
        raise UsageError(
            f"--prefix-cache-tokens: {cache} tokens hold no block of {block or 64} tokens (--prefix-block-tokens); "
            "expected at least one block"
        )
    rate = args.tool_call_rate
    if rate is not None and not (math.isfinite(rate) and 0 <= rate <= 1):
        raise UsageError(f"--tool-call-rate: expected a share 0..1, got {rate}")
    if args.tool_call_tokens is not None and args.tool_call_tokens <= 0:
        raise UsageError(f"--tool-call-tokens: expected a positive number of tokens, got {args.tool_call_tokens}")


def backend_config_from_args(args: argparse.Namespace) -> BackendSpec:
    """Turn ``serve`` options into one backend config dict (validated later by the backend's model)."""
    from sut import FaultFlags
    from sut._plugins import backend_options_from_args, backends

    _check_sim_flags(args)
    from_file = read_config_option(args.config) if args.config else {}
    kind = str(from_file.get("kind") or args.backend)
    cfg: BackendSpec = {"kind": kind, **backend_options_from_args(kind, args)}
    for name, key in _GENERIC_OPTIONS:
        if getattr(args, name) is not None:
            cfg[key] = getattr(args, name)
    if args.chunk_size is not None:
        if args.chunk_size <= 0:
            raise UsageError(f"--chunk-size: expected a positive integer, got {args.chunk_size}")
        # Also a server option (message coalescing); a backend config only takes it when it has the field.
        if "chunk_size" in backends.config_model(kind).model_fields:
            cfg["chunk_size"] = args.chunk_size
    if args.fault:
        known = list(FaultFlags.model_fields)
        for name in args.fault:
            if name not in known:
                raise UsageError(f"--fault: unknown fault '{name}'; expected one of: {', '.join(known)}")
        cfg["faults"] = {name: True for name in args.fault}
    cfg.update(from_file)
    return cfg


_SERVER_ONLY = (
    "host",
    "port",
    "port_file",
    "metrics_port_file",
    "replica_id",
    "http",
    "http_fault",
    "metrics_port",
    "grace",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "auth_token_file",
    "metrics_token_file",
    "metrics_basic_auth_file",
    "metrics_tls_cert",
    "metrics_tls_key",
    "metrics_open",
)


def backend_config_from_serve_args(argv: list[str]) -> BackendSpec:
    """The backend config that ``lpuperf serve ARGV`` would build (for workflows' ``--serve-arg`` options).

    Only backend options are accepted: a spawned SUT's port, HTTP front and metrics belong to the launcher.
    """
    parser = argparse.ArgumentParser(prog="lpuperf serve", add_help=False, allow_abbrev=False, exit_on_error=False)
    add_serve_arguments(parser)
    try:
        args, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError as exc:
        raise UsageError(f"--serve-arg: {exc}") from None
    if unknown:
        raise UsageError(f"--serve-arg: unrecognized serve argument '{unknown[0]}'")
    defaults, _ = parser.parse_known_args([])
    for name in _SERVER_ONLY:
        if getattr(args, name) != getattr(defaults, name):
            raise UsageError(f"--serve-arg: --{name.replace('_', '-')} is not a backend option of a spawned SUT")
    cfg = backend_config_from_args(args)
    if args.backend == defaults.backend and "kind" not in (read_config_option(args.config) if args.config else {}):
        del cfg["kind"]  # let the artifact spec or the caller choose the backend
    return cfg


def write_port_file(path: str | Path, port: int) -> None:
    """Write the port atomically: readers never see an empty or partial file."""
    write_atomic(path, f"{port}\n")


def _check_free_port(flag: str, host: str, port: int) -> None:
    """Fail with one line before grpc logs its own bind error: a port in use, or (port 0 too) a host that
    is no address of this machine."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"--host: cannot resolve '{host}' ({getattr(exc, 'strerror', None) or exc})") from None
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free for grpc too
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            where = "--host" if port == 0 or exc.errno == errno.EADDRNOTAVAIL else flag
            raise UsageError(f"{where}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def run_serve(args: argparse.Namespace) -> int:
    # First, before grpc is imported: ``python -m sut serve`` and spawned SUTs come here without cli.main.
    quiet_grpc_logs()
    from common import RegistryError
    from scenarios.dataset import DatasetError
    from sut._embedded import create_backend

    for name in ("port", "http", "metrics_port"):
        v = getattr(args, name)
        if v is not None and not (0 <= v <= 65535):
            raise UsageError(f"--{name.replace('_', '-')}: expected a port 0..65535, got {v}")
    if args.grace < 0:
        raise UsageError(f"--grace: expected seconds >= 0, got {args.grace}")
    if args.replica_id is not None and not (0 < len(args.replica_id) <= 128 and args.replica_id.isprintable()):
        raise UsageError("--replica-id: expected 1 to 128 printable characters")
    http_faults: list[Any] = []
    if args.http_fault and args.http is None:
        raise UsageError("--http-fault: expected together with --http PORT")
    if args.http is not None:
        try:
            from sut._http import parse_http_fault
        except ImportError:
            raise UsageError("--http: the HTTP front is not available") from None
        try:
            http_faults = [parse_http_fault(spec) for spec in args.http_fault]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    args.http_faults = http_faults
    if args.port_file:
        # Checked before binding: a failure after the SUT is up would leave its callers waiting for a port.
        check_writable_file(args.port_file, "--port-file")
    if args.metrics_port_file:
        if args.metrics_port is None:
            raise UsageError("--metrics-port-file: expected together with --metrics-port")
        check_writable_file(args.metrics_port_file, "--metrics-port-file")
    _check_free_port("--port", args.host, args.port)
    if args.metrics_port:
        _check_free_port("--metrics-port", args.host, args.metrics_port)
    args.security, args.metrics_security = server_security_from_args(args)
    args.security.token()  # a bad token file or variable is one line before the backend loads
    args.metrics_security.expected_authorizations("--metrics-port")
    for line in _start_warnings(args):
        print(f"lpuperf serve: warning: {line}", file=sys.stderr, flush=True)
    cfg = backend_config_from_args(args)
    try:
        backend = create_backend(cfg)
    except (RegistryError, DatasetError) as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"backend: {str(exc).splitlines()[0]}") from None
    import uvloop

    return uvloop.run(_serve(backend, args))


def _http_ssl_context(args: argparse.Namespace) -> Any:
    """The HTTP front serves HTTPS with the gRPC port's certificate (client certificates are gRPC's only)."""
    from common import server_ssl_context

    if args.tls_cert is None or args.tls_key is None:
        return None
    return server_ssl_context(args.tls_cert, args.tls_key, None, "--http")


def _start_warnings(args: argparse.Namespace) -> list[str]:
    """Lines for a start that works but is unsafe or bound to fail its clients (never an error)."""
    from sut._security import certificate_validity_warning, file_mode_warning

    lines: list[str] = args.security.start_warnings()
    if args.metrics_port is not None:
        if args.metrics_tls_cert is not None:
            lines += [w for w in [certificate_validity_warning(args.metrics_tls_cert, "--metrics-tls-cert")] if w]
        for path, flag in (
            (args.metrics_tls_key, "--metrics-tls-key"),
            (args.metrics_token_file, "--metrics-token-file"),
            (args.metrics_basic_auth_file, "--metrics-basic-auth-file"),
        ):
            lines += [w for w in [file_mode_warning(path, flag)] if w]
        if args.metrics_open and _has_token(args.security):
            lines.append(
                "--metrics-open: the metrics endpoint answers anyone who can reach it, although the gRPC port "
                "requires a token"
            )
    return lines


def _has_token(security: Any) -> bool:
    return security.auth_token_file is not None or security.auth_token_env is not None


def _metrics_words(args: argparse.Namespace) -> str:
    """How the metrics endpoint is protected, for the start-up line."""
    m = args.metrics_security
    own = [
        name for name, flag in (("bearer token", args.metrics_token_file), ("basic auth", m.basic_auth_file)) if flag
    ]
    if own:
        return f" ({' or '.join(own)})"
    if m.token_file is not None or m.token_env is not None:
        return " (the gRPC port's bearer token; --metrics-open drops it)"
    return " (no auth)" if _has_token(args.security) else ""


def _security_words(security: Any) -> str:
    """How the gRPC port is protected, for the start-up line (never the token)."""
    parts = ["mTLS" if security.mutual_tls else "TLS"] if security.tls else []
    if _has_token(security):
        parts.append("bearer token")
    return f" ({', '.join(parts)})" if parts else ""


async def _serve(backend: Any, args: argparse.Namespace) -> int:
    import asyncio
    import gc
    import signal

    from sut._server import SutServer

    metrics = None
    if args.metrics_port is not None:
        from sut._metrics import SutMetrics

        metrics = SutMetrics(backend.manifest)
    security = args.security if args.security.enabled else None
    # grpc takes an IPv6 address in brackets ([::1]:50051); sockets, aiohttp and the exporter take it bare.
    grpc_host = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
    server = SutServer(
        backend,
        grpc_host,
        args.port,
        chunk_size=args.chunk_size,
        metrics=metrics,
        security=security,
        replica_id=args.replica_id,
    )
    from common import RegistryError
    from sut._backend import BackendError

    try:
        await server.start()
    except (BackendError, RegistryError) as exc:
        await server.drain(0)
        line, kind = str(exc).splitlines()[0], backend.manifest.backend
        # A backend that names itself ("openai backend: cannot reach ...") is not named twice.
        raise UsageError(line if line.startswith(f"{kind} backend") else f"backend {kind}: {line}") from None
    except OSError as exc:
        raise UsageError(f"--port: could not listen on {args.host}:{args.port}: {exc}") from None
    front = None
    try:
        if metrics is not None:
            metrics.serve(args.metrics_port, addr=args.host, security=args.metrics_security)
        if args.http is not None:
            import sut._http as http

            front = await http.start_http_front(
                backend,
                args.host,
                args.http,
                faults=args.http_faults,
                ssl_context=_http_ssl_context(args),
                token=args.security.token(),
                on_auth_refused=None if metrics is None else lambda reason: metrics.auth_refused("http", reason),
                metrics=metrics,
            )
    except OSError as exc:
        await server.drain(0)
        raise UsageError(f"could not start a listener: {exc}") from None
    # Everything alive now (modules, the backend, the dataset) lives as long as the process: moved out of
    # the collector's sight, full collections during load stop walking it (3-4 % of the server's CPU per
    # query on the instant sim). Done here, not in SutServer, so an embedding process keeps its own policy.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.metrics_port_file and metrics is not None:  # first: a reader of --port-file finds both
        write_port_file(args.metrics_port_file, metrics.port)
    if args.port_file:
        write_port_file(args.port_file, server.port)
    m = backend.manifest
    extras = ""
    if metrics is not None:
        extras += f", metrics on {metrics.scheme}://{args.host}:{metrics.port}{_metrics_words(args)}"
    if front is not None:
        extras += f", {front.scheme} on {front.address}"
    how = _security_words(args.security)
    print(
        f"lpuperf serve: listening on {server.address}{how} (replica {server.replica_id}, artifact {m.artifact_id}, "
        f"{m.backend}){extras}",
        flush=True,
    )
    await stop.wait()
    print(f"lpuperf serve: draining ({server.inflight} in flight, grace {args.grace:g} s)", file=sys.stderr, flush=True)
    if front is not None:
        await front.stop()
    await server.drain(args.grace)
    if metrics is not None:
        metrics.close()
    return 0
