"""Subcommands ``run`` (the whole workflow on a study, from any folder) and ``defaults``.

``run`` validates the study, then runs Snakemake on the Snakefile shipped inside the package with
the study as working directory, so an installed package needs no clone. Options it does not know
are Snakemake's and are passed on unchanged::

    nms-pipeline run my_study --cores 4
    nms-pipeline run my_study --cores 4 --dry-run
    nms-pipeline run my_study --profile slurm --until calibrate

The package never imports Snakemake; it runs it with the interpreter that runs this command.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

from pipeline import resources
from pipeline.cli._common import add_command
from pipeline.errors import ConfigError, describe

log = logging.getLogger(__name__)


def profile_path(profile: str) -> Path:
    """A profile folder as given, else the packaged profile of that name (``slurm``)."""
    given = Path(profile)
    if given.is_dir():
        if not (given / "config.yaml").is_file():
            raise ConfigError(describe(given, "not a Snakemake profile (no config.yaml)",
                                       "give a folder holding a profile's config.yaml, or the "
                                       "name of a packaged profile such as slurm"))
        return given.resolve()
    return resources.profile_dir(profile)


def snakemake_command(study: Path, *, cores: str | None, profile: str | None,
                      snakemake_args: list[str]) -> list[str]:
    """The Snakemake command line that runs the packaged workflow on ``study``.

    A local run uses Snakemake's greedy job selection unless the arguments choose one: its
    default (an integer program, solved by starting the CBC solver whenever more jobs are ready
    than cores are free, about 200 times on the demo study) cost the demo run 10-15 s of CPU on
    2 cores and chose no better for jobs that each take one or two cores.
    """
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(resources.snakefile()),
               "--directory", str(study.resolve())]
    if profile is not None:
        command += ["--profile", str(profile_path(profile))]
    if cores is not None:
        command += ["--cores", cores]
    elif profile is None:
        command += ["--cores", "all"]
    if profile is None and not any(a == "--scheduler" or a.startswith("--scheduler=")
                                   for a in snakemake_args):
        command += ["--scheduler", "greedy"]
    return command + snakemake_args


def snakemake_environment(environ: dict[str, str] | os._Environ[str], *, profile: str | None,
                          snakemake_args: list[str]) -> dict[str, str]:
    """The environment of the Snakemake process.

    Snakemake imports every installed executor plugin as it starts, and the SLURM plugin then
    runs ``scontrol show config``. Where SLURM's client is installed but no controller answers
    (a workstation with the package, a machine whose test cluster is stopped), that waits about
    10 s on every run and every dry run. A local run (no profile, no ``--executor``) never talks
    to SLURM, so its ``scontrol`` is pointed at an empty configuration and fails at once; a
    ``SLURM_CONF`` already set is kept.
    """
    env = dict(environ)
    executor = any(a in ("-e", "--executor") or a.startswith("--executor=")
                   for a in snakemake_args)
    if profile is None and not executor:
        env.setdefault("SLURM_CONF", os.devnull)
    return env


def _run(args: argparse.Namespace) -> int:
    from pipeline.study import load_study

    study = load_study(args.study)
    extra = [a for a in args.extra if a != "--"]
    command = snakemake_command(study.root, cores=args.cores, profile=args.profile,
                                snakemake_args=extra)
    log.info("running: %s", shlex.join(command))
    return subprocess.call(command, env=snakemake_environment(os.environ, profile=args.profile,
                                                              snakemake_args=extra))


def _defaults(args: argparse.Namespace) -> int:
    sys.stdout.write(resources.default_config().read_text(encoding="utf-8"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "run", _run,
                         "run the workflow on a study (other options are passed to Snakemake)")
    parser.add_argument("study", help="study folder (config.yaml, subjects.tsv, trials.tsv)")
    parser.add_argument("-c", "--cores", default=None,
                        help="CPU cores for local jobs (default: all; none with a profile)")
    parser.add_argument("--profile", default=None,
                        help="Snakemake profile: a folder, or a packaged one (slurm)")
    parser.set_defaults(pass_through=True)
    add_command(subparsers, "defaults", _defaults,
                "print the commented default config.yaml (what a study's config overrides)")
