"""grpc's own log, kept off the user's terminal unless asked for.

grpc's C core writes its log lines straight to stderr, ERROR lines included: a failed bind, a CA
bundle it cannot load, a client key that does not match its certificate, metadata it refuses to send.
Each of those failures already reaches the user as the command's own one line, so grpc's lines only
bury it. grpc reads ``GRPC_VERBOSITY`` once, when it is imported, so this runs before that, at each
entry point (``lpuperf``, ``lpuperf serve`` / ``python -m sut serve``); spawned SUTs inherit the
setting through the environment.
"""

from __future__ import annotations

import os
import sys

VERBOSITY_ENV = "GRPC_VERBOSITY"
TRACE_ENV = "GRPC_TRACE"


def quiet_grpc_logs() -> bool:
    """Set ``GRPC_VERBOSITY=NONE`` unless the user set it or asked for a trace; whether it took effect.

    A user who sets ``GRPC_VERBOSITY`` (``ERROR``, ``INFO``, ``DEBUG``) or ``GRPC_TRACE`` gets grpc's
    log as they asked. Too late once grpc is imported: False then.
    """
    if VERBOSITY_ENV in os.environ or os.environ.get(TRACE_ENV, "").strip():
        return False
    os.environ[VERBOSITY_ENV] = "NONE"
    return "grpc" not in sys.modules
