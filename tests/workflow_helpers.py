"""Run the project's Snakemake workflow from tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from project_paths import PROJECT_ROOT

from pipeline.cli.workflow import snakemake_environment


def run_snakemake(study: Path, *args: str, timeout_s: int = 3600) -> str:
    """Run the project's workflow on ``study`` with the venv's Snakemake; return its output."""
    env = snakemake_environment(os.environ, profile=None, snakemake_args=list(args))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT_ROOT / "Snakefile"),
               "--cores", "2", "--directory", str(study), *args]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=timeout_s, env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    return output


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> number of jobs a ``snakemake -n`` run would execute (its job-stats table; empty
    when nothing is planned; the ``total`` row left out)."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:")[-1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table,
                                                              re.MULTILINE)
            if m.group(1) != "total"}
