"""``python -m sut serve ...``: the same ``serve`` command as ``lpuperf serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from sut._embedded import die_with_parent

    die_with_parent()  # a no-op unless spawn_server started this process
    from common import UsageError
    from sut import add_serve_parser

    parser = argparse.ArgumentParser(prog="python -m sut")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_serve_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"lpuperf {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
