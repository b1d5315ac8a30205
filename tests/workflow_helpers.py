"""Run the project's Snakemake workflow from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_paths import PROJECT_ROOT


def run_snakemake(study: Path, *args: str, timeout_s: int = 3600) -> str:
    """Run the project's workflow on ``study`` with the venv's Snakemake; return its output."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT_ROOT / "Snakefile"),
               "--cores", "2", "--directory", str(study), *args]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=timeout_s, env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    return output
