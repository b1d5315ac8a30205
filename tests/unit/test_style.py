"""Tooling gates: ruff is clean and the package never imports snakemake."""

from __future__ import annotations

import subprocess
import sys

from project_paths import PROJECT_ROOT


def test_ruff_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "pipeline", "tests"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_never_imports_snakemake() -> None:
    offenders = [str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "pipeline").rglob("*.py")
                 if "import snakemake" in p.read_text() or "from snakemake" in p.read_text()]
    assert offenders == []


def test_cli_start_up_stays_light() -> None:
    """Every rule starts the CLI: building the parser must not import torch or OpenSim."""
    code = ("import sys; from pipeline.__main__ import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'opensim', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=PROJECT_ROOT)
    assert result.stdout.strip() == "[]"


def test_every_subcommand_help_renders() -> None:
    """argparse formats help strings with %: a stray % crashes --help of the whole group."""
    import argparse

    from pipeline.__main__ import build_parser

    def walk(parser: argparse.ArgumentParser) -> None:
        parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())


def test_command_map_names_every_subcommand_and_only_its_module_is_imported() -> None:
    """``pipeline.cli.COMMANDS`` equals what the modules register; a call to one subcommand
    imports only its module (``report`` would pull in plotting and the study loader)."""
    import argparse
    import importlib
    import pkgutil

    from pipeline import cli
    from pipeline.__main__ import subcommand_of

    registered = {}
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name.startswith("_"):
            continue
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"pipeline.cli.{info.name}").register(sub)
        registered.update(dict.fromkeys(sub.choices, info.name))
    assert registered == cli.COMMANDS
    assert subcommand_of(["--log", "run.log", "-v", "markers", "--study", "s"]) == "markers"
    assert subcommand_of(["--log=run.log", "ik"]) == "ik"
    assert subcommand_of(["--version"]) is None
    code = ("import sys; from pipeline.__main__ import build_parser; "
            "p = build_parser('markers'); "
            "print(sorted(m for m in sys.modules if m.startswith('pipeline.cli.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=PROJECT_ROOT)
    assert result.stdout.strip() == "['pipeline.cli._common', 'pipeline.cli.preprocess']"
