"""Subcommands ``new-study`` and ``validate-study``."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from pipeline import resources
from pipeline.cli._common import add_command
from pipeline.errors import ConfigError
from pipeline.study import load_study

log = logging.getLogger(__name__)
TEMPLATE_FILES = ("config.yaml", "subjects.tsv", "trials.tsv")


def new_study(directory: Path) -> list[Path]:
    """Copy the commented templates into ``directory``; never overwrite existing files."""
    targets = [directory / name for name in TEMPLATE_FILES]
    existing = [t for t in targets if t.exists()]
    if existing:
        raise ConfigError(f"{existing[0]}: already exists. Fix: choose an empty folder, or "
                          "delete the study files you want to replace")
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in zip(TEMPLATE_FILES, targets, strict=True):
        shutil.copyfile(resources.template_dir() / name, target)
    return targets


def _new_study(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    new_study(directory)
    log.info("wrote %s/{%s}", directory, ",".join(TEMPLATE_FILES))
    log.info("next: edit them, put your C3D files under %s, then run "
             "`nms-pipeline validate-study %s` and `nms-pipeline run %s --cores N`",
             directory, directory, directory)
    return 0


def _validate_study(args: argparse.Namespace) -> int:
    study = load_study(args.directory, check_files=not args.skip_files,
                       check_data=not args.skip_files)
    n_trials = len(study.trials)
    log.info("%s: valid (%d subject(s), %d trial(s))", study.root, len(study.subjects), n_trials)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "new-study", _new_study,
                         "write commented config.yaml, subjects.tsv and trials.tsv templates")
    parser.add_argument("directory", help="study folder to create")
    parser = add_command(subparsers, "validate-study", _validate_study,
                         "validate a study's config, sheets and data files, listing every problem")
    parser.add_argument("directory", help="study folder")
    parser.add_argument("--skip-files", action="store_true",
                        help="do not open the data files (C3D, models, marker sets)")
