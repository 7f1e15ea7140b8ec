"""``lpuperf``: one entry point, one subcommand per workflow.

Each subcommand lives in the package that owns its concern and exposes
``add_parser(subparsers)``; the parser sets ``func(args) -> int``. Command modules keep heavy
imports (LoadGen, torch) inside their functions so ``lpuperf --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (module providing add_parser) in the order shown by --help.
_COMMAND_MODULES: tuple[str, ...] = (
    "sut._cli",
    "loadgen_harness._cli_run",
    "loadgen_harness._cli_find_peak",
    "loadgen_harness._cli_gate",
    "loadgen_harness._cli_compare",
    "loadgen_harness._cli_validate",
    "loadgen_harness._cli_submission",
    "accuracy._cli",
    "loadgen_harness._cli_report",
    "compliance._cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lpuperf",
        description="MLPerf-style LoadGen load testing and validation for LLM inference.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("lpuperf: interrupted", file=sys.stderr)
        return 130
    except CliError as exc:
        print(f"lpuperf {args.command}: error: {exc}", file=sys.stderr)
        return 2


class CliError(Exception):
    """Bad input: printed as one line, exit status 2."""


if __name__ == "__main__":
    # Run through the imported module so command modules and this entry point share one CliError class.
    from loadgen_harness.cli import main as _main

    raise SystemExit(_main())
