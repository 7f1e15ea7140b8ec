"""``lpuperf``: one entry point, one subcommand per workflow.

Each subcommand is a module here (``serve`` is the SUT package's) exposing ``add_parser(subparsers)``;
the parser sets ``func(args) -> int``. Building the parser imports no heavy library (pydantic,
numpy, grpc, LoadGen, torch): command modules import them inside their functions, so
``lpuperf --help`` stays instant (tests/unit/cli/test_cli_startup.py checks it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from common import UsageError

# (module, function adding the subparser) in the order shown by --help. `serve` belongs to the SUT
# package so a SUT image runs it without the harness.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("sut", "add_serve_parser"),
    ("cli._run", "add_parser"),
    ("cli._find_peak", "add_parser"),
    ("cli._plan", "add_parser"),
    ("cli._gate", "add_parser"),
    ("cli._compare", "add_parser"),
    ("cli._validate", "add_parser"),
    ("cli._submission", "add_parser"),
    ("cli._accuracy", "add_parser"),
    ("cli._report", "add_parser"),
    ("cli._export", "add_parser"),
    ("cli._compliance", "add_parser"),
    ("cli._history", "add_parser"),
)


class OneLineParser(argparse.ArgumentParser):
    """argparse reporting bad input the way the commands do: ``PROG: error: ...`` on one line, exit 2.

    argparse's default puts the usage block first, which buries the line naming the bad flag and
    makes scripted callers parse several lines; ``--help`` still shows the usage.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lpuperf",
        description="MLPerf-style LoadGen load testing and validation for LLM inference.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module, func in _COMMANDS:
        getattr(importlib.import_module(module), func)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # grpc's C core logs failed TLS handshakes at INFO to stderr; the commands report them as one line.
    # Set before grpc is imported (it reads this once); GRPC_VERBOSITY=INFO shows them again.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2, already reported on one line)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        # A run stopped by a signal (loadgen_harness.RunInterrupted) says which: 130 SIGINT, 143 SIGTERM.
        code = int(getattr(exc, "exit_code", 130))
        print(f"lpuperf: interrupted by {getattr(exc, 'signal_name', 'SIGINT')}", file=sys.stderr)
        if getattr(exc, "must_exit", False):
            # LoadGen's abandoned test still runs on its own thread; an interpreter shutdown would
            # call into Python from it mid-finalisation. Its outputs are written and the SUT stopped.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except UsageError as exc:
        print(f"lpuperf {args.command}: error: {exc}", file=sys.stderr)
        return 2
