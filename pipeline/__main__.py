"""Command-line entry point: ``nms-pipeline <subcommand> ...`` (or ``python -m pipeline ...``).

Subcommands live in :mod:`pipeline.cli`; each module there defines ``register(subparsers)`` and is
discovered automatically. User mistakes (:class:`~pipeline.errors.PipelineError`) and the machine's
faults (:class:`OSError`: disk full, read-only folder, an output path under a regular file, a
missing input) are printed as one clear message with exit status 2, never as a traceback. A
subcommand that sets ``pass_through`` receives the options it does not know in ``args.extra``
(``run`` hands them to Snakemake).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from pipeline import __version__, cli
from pipeline._gc import command_line_process, lasting_imports
from pipeline._threads import pin_blas_threads
from pipeline.errors import PipelineError, describe_os_error
from pipeline.logs import setup_logging

log = logging.getLogger("pipeline")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or only ``command``'s module's (a known subcommand)."""
    parser = argparse.ArgumentParser(
        prog="nms-pipeline",
        description="EMG-informed neuromusculoskeletal calibration pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    parser.add_argument("--log", default=None, help="also append log messages to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level logging")
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    if command in cli.COMMANDS:
        names = [cli.COMMANDS[command]]
    else:
        names = sorted(info.name for info in pkgutil.iter_modules(cli.__path__)
                       if not info.name.startswith("_"))
    for name in names:
        importlib.import_module(f"pipeline.cli.{name}").register(subparsers)
    return parser


def subcommand_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (after the global options), or None."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None) -> int:
    # Before build_parser: the subcommand modules' imports may load numpy's BLAS.
    argv_list = sys.argv[1:] if argv is None else list(argv)
    pin_blas_threads(argv_list)
    with lasting_imports():
        parser = build_parser(subcommand_of(argv_list))
    args, extra = parser.parse_known_args(argv_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    if extra and not getattr(args, "pass_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    setup_logging(None, verbose=args.verbose)
    try:
        if args.log is not None:
            setup_logging(args.log, verbose=args.verbose)
        result = args.func(args)
    except PipelineError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:  # the machine's faults: disk full, read-only, path under a file
        log.error("%s", describe_os_error(exc))
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; no partial outputs were kept")
        return 130
    return int(result or 0)


def exit_now(code: int) -> None:
    """End the process with ``code`` without the interpreter's teardown (collecting every module
    of torch, OpenSim and scipy costs ~1 s, 3 s on a busy machine, per workflow job). Every
    output was written through files closed by then (atomic writes); the log handlers and the
    standard streams are flushed first. Used by :func:`console` only, never in-process."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing left to save
            pass
    os._exit(code)


def console() -> None:
    """A command-line run, for ``python -m pipeline`` and the ``nms-pipeline`` script alike:
    :func:`main` in a command-line process (pipeline._gc), ended by :func:`exit_now`."""
    command_line_process()
    exit_now(main())


if __name__ == "__main__":
    console()
