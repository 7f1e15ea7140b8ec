"""The sympy step of MATH grading, run in a worker process so a pathological expression cannot hang scoring.

PRM800K's grader asks sympy whether ``(ground_truth) - (given)`` simplifies to 0. Parsing goes through
``eval`` and simplification has no time bound, so the scorer runs this module as a child process
(``python -I _math_worker.py``): the parent sends one JSON line ``[ground_truth, given]`` per question
and waits a bounded time for ``true``/``false``; past it the child is killed and the answer counts as
wrong (reported as a timeout). The child caps its own address space first.

This file imports nothing from the project, so it runs by path without the package on ``sys.path``.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

_DEFAULT_MEMORY_BYTES = 4 << 30


def sympy_equal(ground_truth: str, given: str) -> bool:
    """True when sympy simplifies ``(ground_truth)-(given)`` to 0; any failure is False, as in PRM800K."""
    import sympy
    from sympy.parsing import sympy_parser

    transformations: Any = (*sympy_parser.standard_transformations, sympy_parser.implicit_multiplication_application)
    try:
        diff = sympy_parser.parse_expr(
            f"({ground_truth})-({given})".replace("^", "**"), transformations=transformations
        )
        return bool(sympy.simplify(diff) == 0)
    except Exception:  # the reference counts every parse/simplify failure as "not equal"
        return False


def main() -> int:
    memory = int(sys.argv[1]) if len(sys.argv) > 1 else _DEFAULT_MEMORY_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    import sympy  # noqa: F401 - imported before "ready" so the parent's per-question clock excludes it

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            gt, given = json.loads(line)
            answer = sympy_equal(str(gt), str(given))
        except (ValueError, TypeError, MemoryError, RecursionError):
            answer = False
        out.write("true\n" if answer else "false\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
