"""Benchmarks run by ``python -m pipeline bench NAME --json FILE``.

Each module here is one benchmark and exposes ``NAME`` (the sub-subcommand), ``HELP`` (one line),
``add_arguments(parser)`` (its options besides ``--json``) and ``run(args) -> dict`` (the JSON
document to write). :func:`discover` finds them; :mod:`pipeline.cli.bench` wires them to the CLI.
Every CLI call imports these modules to build its parser, so import torch and other heavy packages
inside ``run``, not at module level.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["discover"]

_REQUIRED = ("NAME", "HELP", "add_arguments", "run")


def discover() -> dict[str, ModuleType]:
    """Map each benchmark's ``NAME`` to its module, for every module in this package."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if all(hasattr(module, attr) for attr in _REQUIRED):
            found[module.NAME] = module
    return found
