"""Logging set-up shared by every subcommand.

Messages go to stderr, and also to ``--log FILE`` when given (Snakemake rules pass their ``log:``
path), so a rule's log file holds the package's messages and OpenSim's own log.

OpenSim, left alone, creates ``opensim.log`` in the current folder on its first message. Every
command routes OpenSim's file log instead: to ``--log FILE`` when given, nowhere otherwise (its
console messages still reach stderr). Importing OpenSim costs about a second, so commands that
never touch it do not pay for it: the routing happens when the package first imports ``opensim``.
"""

from __future__ import annotations

import importlib.machinery
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, *, verbose: bool = False) -> None:
    """Configure the root logger for one CLI invocation, and where OpenSim's log goes."""
    level = logging.DEBUG if verbose else logging.INFO
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="a", encoding="utf-8"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    for noisy in ("matplotlib", "PIL", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    route_opensim_log(log_file)


def _route(opensim: ModuleType, log_file: str | Path | None) -> None:
    # A manual remove/add disables OpenSim's automatic opensim.log in the current folder.
    opensim.Logger.removeFileSink()
    if log_file is not None:
        opensim.Logger.addFileSink(str(log_file))


class _RouteOnImport:
    """Finds ``opensim`` with the normal finders and routes its log right after it loads.

    A meta path finder and loader by its methods (``find_spec``; ``create_module``,
    ``exec_module``), without the ``importlib.abc`` base classes, whose import costs every
    command ~20 ms."""

    def __init__(self, log_file: str | Path | None) -> None:
        self.log_file = log_file
        self._loader: Any = None

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "opensim":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        # A loader by its methods; typeshed names importlib.abc.Loader, which is not imported.
        self._loader, spec.loader = spec.loader, self  # type: ignore[assignment]
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _route(module, self.log_file)


def route_opensim_log(log_file: str | Path | None) -> None:
    """Send OpenSim's file log to ``log_file`` (appending), or nowhere when it is None; now if
    OpenSim is loaded, else when it is first imported."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RouteOnImport)]
    if "opensim" in sys.modules:
        _route(sys.modules["opensim"], log_file)
    else:
        sys.meta_path.insert(0, _RouteOnImport(log_file))
