"""Command-line entry point: ``python -m pipeline <subcommand> ...``.

Subcommands live in :mod:`pipeline.cli`; each module there defines ``register(subparsers)`` and is
discovered automatically. User mistakes (:class:`~pipeline.errors.PipelineError`) are printed as one
clear message with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from pipeline import __version__, cli
from pipeline._threads import pin_blas_threads
from pipeline.errors import PipelineError
from pipeline.logs import setup_logging

log = logging.getLogger("pipeline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="EMG-informed neuromusculoskeletal calibration pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    parser.add_argument("--log", default=None, help="also append log messages to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level logging")
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"pipeline.cli.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before build_parser: the subcommand modules' imports may load numpy's BLAS.
    pin_blas_threads(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    setup_logging(args.log, verbose=args.verbose)
    try:
        result = args.func(args)
    except PipelineError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; no partial outputs were kept")
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
