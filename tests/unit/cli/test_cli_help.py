"""Every flag of every command says what it does, and ``run --help`` says which flags --transport
openai-http takes."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator

import cli


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield " ".join(prefix), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))


def test_every_flag_and_argument_has_help() -> None:
    missing = [
        f"lpuperf {cmd} {'/'.join(a.option_strings) or a.dest}".replace("  ", " ")
        for cmd, parser in _commands(cli.build_parser())
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction) and not (a.help or "").strip()
    ]
    assert missing == [], f"flags without help text: {missing}"


def _help(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli.build_parser().parse_args([*argv, "--help"])
    return " ".join(out.getvalue().split())


def test_run_help_says_the_openai_flags_also_serve_the_openai_http_transport() -> None:
    text = _help("run")
    group = text[text.index("openai backend (--backend openai)") :]
    assert group.startswith("openai backend (--backend openai), and --transport openai-http:")
    assert "with --transport openai-http they name the endpoint the harness streams each query to" in group
    for flag in ("--base-url", "--model", "--api-key-env", "--ca-bundle"):
        assert flag in group
    for flag in ("--scenario", "--mode", "--min-query-count", "--max-new-tokens"):
        assert flag in text
    # lpuperf serve shares the flags but has no such transport: its help does not claim it.
    assert "openai-http" not in _help("serve")
