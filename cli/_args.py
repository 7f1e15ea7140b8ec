"""argparse ``type=`` converters shared by the commands: each refuses bad input while parsing.

A refusal here reaches the user as ``lpuperf CMD: error: argument --FLAG: <why>``, exit 2, before
any SUT starts or any directory is made.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import UsageError, check_run_id, check_writable_dir, check_writable_file


def run_id_arg(text: str) -> str:
    """A run id: one safe path component, so OUT/<run-id>/ stays under OUT."""
    try:
        return check_run_id(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def out_dir_arg(text: str) -> Path:
    """An output directory this process can create and write in (checked with a probe file, then removed)."""
    try:
        return check_writable_dir(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def out_file_arg(text: str) -> Path:
    """An output file this process can create or replace."""
    try:
        return check_writable_file(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def error_line(exc: BaseException) -> str:
    """One line for an error a command turns into exit status 2.

    A pydantic ValidationError from a config built deeper down (a run's RunConfig, a SUT target)
    prints as a multi-line report headed '1 validation error for X'; this gives its first field error.
    """
    from pydantic import ValidationError

    from common import first_error_line

    if isinstance(exc, ValidationError):
        return first_error_line(exc, exc.title)
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def relative_tolerance_arg(text: str) -> float:
    """argparse type for a relative tolerance such as 0.05 (0 <= value < 10)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"expected a relative tolerance such as 0.05, got '{text}'")
    return value
