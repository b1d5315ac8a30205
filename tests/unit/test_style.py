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
