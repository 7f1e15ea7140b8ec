"""Lazy package exports: a package names its public objects without importing the modules behind them.

``lpuperf --help`` builds every subcommand's parser; a package whose ``__init__`` imported all of its
modules would pull numpy, grpc or the dataset code into that, and into every light import of one
name. With :func:`lazy_exports` the module behind a name is imported on first access (PEP 562).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` serving ``{module: [name, ...]}`` on first access.

    A name may be ``"public=private"`` to export a module's ``private`` object as ``public``. The
    value is then set on the package, so later lookups are plain attribute reads.
    """
    where: dict[str, tuple[str, str]] = {}
    for module, names in exports.items():
        for spec in names:
            public, _, attr = spec.partition("=")
            if public in where:
                raise ValueError(f"{package}: '{public}' is exported from both {where[public][0]} and {module}")
            where[public] = (module, attr or public)

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        module, attr = where[name]
        value = getattr(importlib.import_module(module), attr)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
