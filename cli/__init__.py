"""The ``lpuperf`` command line: the top layer, one module per subcommand."""

from cli._main import build_parser, main

__all__ = ["build_parser", "main"]
