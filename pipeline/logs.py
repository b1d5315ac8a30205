"""Logging set-up shared by every subcommand.

Messages go to stderr, and also to ``--log FILE`` when given (Snakemake rules pass their ``log:``
path), so a rule's log file holds the package's messages and OpenSim's own log.
"""

from __future__ import annotations

import logging
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, *, verbose: bool = False) -> None:
    """Configure the root logger for one CLI invocation."""
    level = logging.DEBUG if verbose else logging.INFO
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        path = Path(log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="a", encoding="utf-8"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    for noisy in ("matplotlib", "PIL", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def route_opensim_log(log_file: str | Path | None) -> None:
    """Send OpenSim's own log to ``log_file`` (appending), when one is given."""
    if log_file is None:
        return
    import opensim

    opensim.Logger.addFileSink(str(log_file))
