"""The one error every layer raises for bad input: the CLI prints it as one line and exits 2."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input (a flag, a file, a config field): one line naming what was wrong and what was expected.

    Every package raises this (or a subclass) for input the user can fix; the CLI turns it into
    ``lpuperf COMMAND: error: <line>`` and exit status 2. It lives at the bottom of the layer order
    so the SUT, the harness and the workflows share it without importing the CLI.
    """
