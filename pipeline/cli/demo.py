"""Subcommand ``demo-study``: write the synthetic demo study (C3D files + truth)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.cli._common import add_command
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)


def _demo_study(args: argparse.Namespace) -> int:
    from pipeline.synth import generate_demo_study

    directory = Path(args.directory)
    if (directory / "config.yaml").exists() and not args.force:
        raise ConfigError(f"{directory / 'config.yaml'}: already exists. Fix: choose a new "
                          "folder, delete this one, or pass --force to overwrite it")
    generate_demo_study(directory, seed=args.seed, small=args.small)
    log.info("next: nms-pipeline validate-study %s; nms-pipeline run %s --cores N",
             directory, directory)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "demo-study", _demo_study,
                         "write a synthetic demo study (C3D files, sheets, config, truth.json)")
    parser.add_argument("directory", help="study folder to create")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the true parameters and noise (default 0)")
    parser.add_argument("--small", action="store_true",
                        help="a reduced study for tests (shorter and fewer trials)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite the study files if the folder already holds a study")
