"""``lpuperf run --scrape``: the flags that name what server-side telemetry a run samples, and their check."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from common import UsageError

if TYPE_CHECKING:
    from loadgen_harness import TelemetryConfig

SUT_KEYWORD = "sut"


def add_scrape_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "server-side telemetry (stored as telemetry.npz; energy over the measured window in results.json)"
    )
    g.add_argument(
        "--scrape",
        nargs="?",
        const=SUT_KEYWORD,
        metavar="URL[,URL...]",
        help="sample Prometheus endpoints during the run (http(s)://host:port/metrics), 'rapl' for this host's "
        "/sys/class/powercap counters, 'sut' (the default with no value) for the SUT's own exporters only; "
        "the embedded SUT's exporter is always added",
    )
    g.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    g.add_argument("--scrape-token-file", type=Path, help="file holding a bearer token for the --scrape URLs")
    g.add_argument("--scrape-basic-auth-file", type=Path, help="file holding user:password for the --scrape URLs")
    g.add_argument("--scrape-ca-file", type=Path, help="CA bundle that verifies the --scrape https URLs")
    g.add_argument(
        "--scrape-replica-port",
        metavar="[https:]PORT",
        help="with --sut: also scrape each replica's host at this metrics port (lpuperf serve --metrics-port), "
        "over HTTPS with 'https:PORT'; the --scrape-token-file/-basic-auth-file/-ca-file credentials apply",
    )
    g.add_argument("--no-scrape-sut", action="store_true", help="do not add the SUT's own exporters")


def telemetry_from_args(args: argparse.Namespace) -> TelemetryConfig | None:
    """RunConfig's ``telemetry`` from the flags (None without --scrape); UsageError naming the flag."""
    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness import ScrapeTarget

    extras = [
        f
        for f, v in (
            ("--scrape-token-file", args.scrape_token_file),
            ("--scrape-basic-auth-file", args.scrape_basic_auth_file),
            ("--scrape-ca-file", args.scrape_ca_file),
            ("--scrape-replica-port", args.scrape_replica_port),
            ("--no-scrape-sut", args.no_scrape_sut or None),
        )
        if v is not None
    ]
    if args.scrape is None:
        if extras:
            raise UsageError(f"{extras[0]}: expected together with --scrape")
        return None
    urls = [u.strip() for u in args.scrape.split(",") if u.strip()]
    if not urls:
        raise UsageError("--scrape: expected a comma-separated list of URLs, 'rapl' or 'sut'")
    auth = {
        "token_file": args.scrape_token_file,
        "basic_auth_file": args.scrape_basic_auth_file,
        "ca_file": args.scrape_ca_file,
    }
    from loadgen_harness import TelemetryConfig

    port, https = _replica_port(args.scrape_replica_port, args.sut)
    try:
        targets = [ScrapeTarget(url=u, **auth) for u in urls if u != SUT_KEYWORD]
        cfg = TelemetryConfig(
            targets=targets,
            interval_s=args.scrape_interval,
            scrape_sut=not args.no_scrape_sut,
            replica_metrics_port=port,
            replica_metrics_https=https,
            **{f"replica_{k}": v for k, v in auth.items()},
        )
    except ValidationError as exc:
        line = first_error_line(exc, "--scrape")
        raise UsageError(line.replace("field 'interval_s'", "field 'scrape-interval'")) from None
    return cfg


def _replica_port(value: str | None, sut: str | None) -> tuple[int | None, bool]:
    """(port, https) of --scrape-replica-port; UsageError when it is not [https:]PORT or there is no --sut."""
    if value is None:
        return None, False
    if not sut:
        raise UsageError("--scrape-replica-port: reaches the replicas of --sut; a spawned SUT is scraped already")
    https = value.startswith("https:")
    port = value.removeprefix("https:").removeprefix("http:")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--scrape-replica-port: expected [https:]PORT with a port in 1..65535, got '{value}'")
    return int(port), https
