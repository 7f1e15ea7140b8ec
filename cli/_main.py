"""``lpuperf``: one entry point, one subcommand per workflow.

Each subcommand is a module here (``serve`` is the SUT package's) exposing ``add_parser(subparsers)``;
the parser sets ``func(args) -> int``. Building the parser imports no heavy library (pydantic,
numpy, grpc, LoadGen, torch): command modules import them inside their functions, so
``lpuperf --help`` stays instant (tests/unit/cli/test_cli_startup.py checks it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import select
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from common import UsageError, quiet_grpc_logs

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

# 128 + SIGPIPE: what a shell reports for a writer whose reader went away (``lpuperf export -o - | head``).
EXIT_BROKEN_PIPE = 141

# (module, function adding the subparser) in the order shown by --help. `serve` belongs to the SUT
# package so a SUT image runs it without the harness.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("sut", "add_serve_parser"),
    ("cli._run", "add_parser"),
    ("cli._sweep", "add_parser"),
    ("cli._find_peak", "add_parser"),
    ("cli._plan", "add_parser"),
    ("cli._gate", "add_parser"),
    ("cli._compare", "add_parser"),
    ("cli._validate", "add_parser"),
    ("cli._submission", "add_parser"),
    ("cli._accuracy", "add_parser"),
    ("cli._report", "add_parser"),
    ("cli._export", "add_parser"),
    ("cli._merge", "add_parser"),
    ("cli._compliance", "add_parser"),
    ("cli._history", "add_parser"),
    ("cli._evals", "add_parser"),
)


class OneLineParser(argparse.ArgumentParser):
    """argparse reporting bad input the way the commands do: ``PROG: error: ...`` on one line, exit 2.

    argparse's default puts the usage block first, which buries the line naming the bad flag and
    makes scripted callers parse several lines; ``--help`` still shows the usage.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse swallows a failed write; a closed reader (--help | head) must end as every command's does.
        if message:
            (file or sys.stdout).write(message)


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
    # grpc's C core logs failures (a bind, a CA bundle, refused metadata) to stderr before the command's
    # own line says the same; it reads GRPC_VERBOSITY once, at import, so this comes first.
    quiet_grpc_logs()
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # output that fit in the buffer meets a closed reader here, not at exit
        return code
    except BrokenPipeError:
        # A reader that stopped early (| head) is not an error of ours. Only when our own output is the
        # closed pipe: a broken socket elsewhere is a failure and keeps its traceback.
        closed = _closed_output_fds()
        if not closed:
            raise
        _discard(closed)
        return EXIT_BROKEN_PIPE


def _dispatch(argv: Sequence[str] | None) -> int:
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
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os._exit(code)
        return code
    except UsageError as exc:
        print(f"lpuperf {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _closed_output_fds() -> list[int]:
    """stdout/stderr descriptors whose reader has gone (a pipe's write end polls POLLERR then)."""
    poller = select.poll()
    fds: list[int] = []
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # replaced by an in-memory stream
            continue
        if fd not in fds:
            poller.register(fd, select.POLLOUT)
            fds.append(fd)
    return [fd for fd, events in poller.poll(0) if events & (select.POLLERR | select.POLLHUP)]


def _discard(fds: list[int]) -> None:
    """Point the closed descriptors at /dev/null: what is still buffered for them is dropped at exit
    instead of raising again in Python's final flush ("Exception ignored ... BrokenPipeError")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in fds:
        os.dup2(devnull, fd)
    os.close(devnull)
