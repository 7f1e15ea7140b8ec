"""``lpuperf evals lm-eval ARGS...``: lm-evaluation-harness with the ``lpuperf`` model registered.

lm-eval discovers no third-party models, so this imports the registration (evals/_lm_eval_model.py) and
hands ``ARGS`` to lm-eval's own command line unchanged: ``lpuperf evals lm-eval --model lpuperf
--model_args target=HOST:PORT --tasks TASK [--include_path DIR] ...``. Inspect AI needs no such entry:
installing lpuperf registers its provider (``inspect eval TASK --model lpuperf/HOST:PORT``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from common import UsageError

LM_EVAL_INSTALL = "pip install 'lpuperf[lm-eval]'"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "evals",
        help="eval frameworks against a SUT (lm-eval; Inspect AI uses --model lpuperf/HOST:PORT directly)",
        description="Run an eval framework's own command line against an lpuperf SUT.",
    )
    sub = p.add_subparsers(dest="evals_command", required=True, metavar="FRAMEWORK")
    lm = sub.add_parser(
        "lm-eval",
        help="lm-evaluation-harness with the lpuperf model registered",
        description="Every argument goes to lm-eval unchanged, e.g. --model lpuperf --model_args "
        "target=HOST:PORT --tasks TASK --include_path DIR. target may be embedded:ARTIFACT (e.g. "
        "embedded:sim-int8). Needs " + LM_EVAL_INSTALL + ".",
        # No option of its own: every --flag is lm-eval's, so none may look like this parser's.
        prefix_chars="+",
        add_help=False,
    )
    lm.add_argument("lm_eval_args", nargs=argparse.REMAINDER, help="lm-eval arguments")
    lm.set_defaults(func=run_lm_eval)


def run_lm_eval(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("lm_eval") is None:
        raise UsageError(f"lm-eval: not installed: {LM_EVAL_INSTALL}")
    importlib.import_module("evals._lm_eval_model")  # registers --model lpuperf
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *args.lm_eval_args]
    try:
        cli_evaluate()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    return 0
