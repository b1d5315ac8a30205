"""The one place that knows where the package's data files are.

The workflow (``Snakefile`` and ``rules/``), the commented default ``config.yaml`` and its JSON
schemas, the study templates and the Snakemake profiles ship inside the package and are found
through :mod:`importlib.resources`, so they are the same files in a clone, an editable install and
an installed wheel. Nothing else in the package works out a project root::

    pipeline/workflow/Snakefile, rules/*.smk          snakefile()
    pipeline/resources/config/config.yaml             default_config()
    pipeline/resources/config/schemas/<name>          schema(name)
    pipeline/resources/templates/                     template_dir()
    pipeline/resources/templates/opensim/             opensim_template_dir()
    pipeline/resources/profiles/<name>/config.yaml    profile_dir(name)
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from pipeline.errors import ConfigError, describe


def _package_path(*parts: str) -> Path:
    """A path in the installed package; the package must be installed as files, not zipped."""
    resource = files("pipeline").joinpath(*parts)
    if not isinstance(resource, Path):
        raise ConfigError(describe(None, f"package data {'/'.join(parts)} is inside an archive "
                                   f"({resource})", "install the package as files (pip install "
                                   "the wheel; zipped installs are not supported)"))
    return resource


def workflow_dir() -> Path:
    """The folder holding the packaged ``Snakefile`` and its ``rules/``."""
    return _package_path("workflow")


def snakefile() -> Path:
    return workflow_dir() / "Snakefile"


def default_config() -> Path:
    """The commented default ``config.yaml`` that every study's ``config.yaml`` overrides."""
    return _package_path("resources", "config", "config.yaml")


def schema(name: str) -> Path:
    """A JSON schema (YAML) of the config or a sheet, e.g. ``config.schema.yaml``."""
    return _package_path("resources", "config", "schemas", name)


def template_dir() -> Path:
    """Templates that ``new-study`` copies into a study: config.yaml, subjects.tsv, trials.tsv."""
    return _package_path("resources", "templates")


def opensim_template_dir() -> Path:
    """OpenSim setup templates (IK tasks, scale measurements) of the built-in models."""
    return template_dir() / "opensim"


def profile_dir(name: str) -> Path:
    """A Snakemake profile shipped with the package (``slurm``)."""
    path = _package_path("resources", "profiles", name)
    if not (path / "config.yaml").is_file():
        known = sorted(p.name for p in _package_path("resources", "profiles").iterdir()
                       if (p / "config.yaml").is_file())
        raise ConfigError(describe(None, f"no packaged Snakemake profile {name!r}",
                                   f"use one of {', '.join(known)} or give a profile folder"))
    return path
