"""The secure-connection flags every command that talks to a running SUT shares (run, find-peak,
validate, compliance, submission, accuracy): ``--tls-ca``, ``--tls-cert``/``--tls-key``,
``--tls-server-name`` and ``--token-file`` (or ``LPUPERF_TOKEN``); and the protection of a command's
own metrics endpoint (``--metrics-tls-cert/--metrics-tls-key``, ``--metrics-token-file``,
``--metrics-basic-auth-file``).

A command module adds them with one call, :func:`add_transport_arguments`, and reads them back as a
``loadgen_harness.TransportSecurity`` with :func:`transport_from_args`. The token flag takes a file:
a token typed on the command line would be readable by every user in ``ps``, so ``--token`` itself
is refused without echoing the value.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from common import UsageError, refuse_secret_flag, secret_file_arg

if TYPE_CHECKING:
    from common import ExporterSecurity
    from loadgen_harness import TransportSecurity

TOKEN_ENV = "LPUPERF_TOKEN"  # also loadgen_harness.TOKEN_ENV; here so --help imports no pydantic
_FLAGS = {
    "tls_ca": "--tls-ca",
    "tls_cert": "--tls-cert",
    "tls_key": "--tls-key",
    "tls_server_name": "--tls-server-name",
    "token_file": "--token-file",
}


def add_transport_arguments(p: argparse.ArgumentParser, target: str = "--sut") -> None:
    """Add the TLS and token flags for the running SUT named by ``target``."""
    g = p.add_argument_group(f"secure connection to a running SUT ({target}; default: plaintext)")
    g.add_argument("--tls-ca", type=Path, metavar="FILE", help="use TLS; verify the SUT against this PEM CA bundle")
    g.add_argument("--tls-cert", type=Path, metavar="FILE", help="client certificate (PEM) for a SUT requiring mTLS")
    g.add_argument("--tls-key", type=Path, metavar="FILE", help="private key (PEM) of --tls-cert")
    g.add_argument(
        "--tls-server-name", metavar="NAME", help="name to verify in the SUT's certificate (for an IP address)"
    )
    g.add_argument(
        "--token-file",
        type=secret_file_arg,
        metavar="FILE",
        help=f"send 'authorization: Bearer <token>' with the token in FILE (or set {TOKEN_ENV})",
    )
    g.add_argument("--token", type=refuse_secret_flag, help=argparse.SUPPRESS)


def transport_from_args(args: argparse.Namespace, remote: bool) -> TransportSecurity:
    """The flags as a TransportSecurity; ``remote`` says whether the command talks to a running SUT.

    ``LPUPERF_TOKEN`` is used only for a running SUT, so a token in the environment never breaks a run
    on a spawned one. UsageError (one line naming the flag) for flags without a running SUT.
    """
    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness import TransportSecurity

    given = {field: getattr(args, field, None) for field in _FLAGS}
    if not remote:
        named = [flag for field, flag in _FLAGS.items() if given[field] is not None]
        if named:
            raise UsageError(
                f"{'/'.join(named)}: only for a running SUT (--sut HOST:PORT); a spawned SUT is plaintext on loopback"
            )
        return TransportSecurity()
    env = TOKEN_ENV if given["token_file"] is None and os.environ.get(TOKEN_ENV, "").strip() else None
    try:
        security = TransportSecurity(**given, token_env=env)
    except ValidationError as exc:
        first = exc.errors()[0]
        error = first.get("ctx", {}).get("error")
        line = str(error) if not first["loc"] and error is not None else first_error_line(exc, "options")
        for field, flag in _FLAGS.items():
            line = line.replace(f"field '{field}'", f"option '{flag}'").replace(f"{field}", flag)
        raise UsageError(line) from None
    security.token()  # a token gRPC cannot carry is refused now, naming its file or variable, not at the first RPC
    return security


def add_metrics_security_arguments(p: argparse.ArgumentParser) -> None:
    """HTTPS and basic/bearer auth of a command's own metrics exporter (``--metrics-port``)."""
    g = p.add_argument_group("metrics endpoint protection (with --metrics-port; default: plain HTTP, no auth)")
    g.add_argument("--metrics-tls-cert", type=Path, metavar="FILE", help="serve the metrics over HTTPS with this cert")
    g.add_argument("--metrics-tls-key", type=Path, metavar="FILE", help="the PEM private key of --metrics-tls-cert")
    g.add_argument(
        "--metrics-token-file",
        type=secret_file_arg,
        metavar="FILE",
        help="require 'Authorization: Bearer <token>' (the file holds the token)",
    )
    g.add_argument(
        "--metrics-basic-auth-file",
        type=secret_file_arg,
        metavar="FILE",
        help="require HTTP basic auth (the file holds 'user:password')",
    )


def metrics_security_from_args(args: argparse.Namespace) -> ExporterSecurity:
    """The metrics flags as an ExporterSecurity; UsageError naming a flag without --metrics-port or a lone half."""
    from common import ExporterSecurity

    fields = {
        "tls_cert": args.metrics_tls_cert,
        "tls_key": args.metrics_tls_key,
        "token_file": args.metrics_token_file,
        "basic_auth_file": args.metrics_basic_auth_file,
    }
    named = [f"--metrics-{name.replace('_', '-')}" for name, value in fields.items() if value is not None]
    if named and args.metrics_port is None:
        raise UsageError(f"{'/'.join(named)}: expected together with --metrics-port")
    if (fields["tls_cert"] is None) != (fields["tls_key"] is None):
        raise UsageError("--metrics-tls-cert and --metrics-tls-key: expected both (the certificate and its key)")
    security = ExporterSecurity(**fields)
    security.expected_authorizations("--metrics-port")  # a bad credential file is one line before the run
    security.ssl_context("--metrics-port")
    return security
