"""``lpuperf --help`` stays instant: building the parser and printing any command's help imports no heavy library.

An import-side check, not a timing one: a fresh interpreter builds the full parser, asks every
command and subcommand for ``--help``, and reports which of the heavy modules got imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# Each of these costs from a tenth of a second (pydantic, numpy, grpc) to seconds (nltk, scipy, torch).
HEAVY = (
    "nltk",
    "scipy",
    "torch",
    "transformers",
    "mlperf_loadgen",
    "httpx",
    "aiohttp",
    "numpy",
    "grpc",
    "pydantic",
    "yaml",
    "sqlalchemy",
)

_PROBE = """
import argparse, contextlib, io, json, sys
import cli

def commands(parser, prefix=()):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))

parser = cli.build_parser()
seen = []
for cmd in commands(parser):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        cli.build_parser().parse_args([*cmd, "--help"])
    seen.append(" ".join(cmd))
heavy = sorted(m for m in json.loads(sys.argv[1]) if m in sys.modules)
print(json.dumps({"commands": seen, "heavy": heavy}))
"""


def test_help_of_every_command_imports_no_heavy_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # The walk really reached the nested commands (submission run, accuracy fidelity, compliance test06, ...).
    assert {"", "serve", "run", "submission run", "accuracy fidelity", "compliance test06"} <= set(out["commands"])
    assert out["heavy"] == [], (
        f"building the CLI parser imported {out['heavy']}: move that import into the function that needs it"
    )
