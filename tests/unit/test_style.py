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
