"""Workflow backbone: `snakemake --lint` is clean and a dry run plans every contract output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from project_paths import PROJECT_ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT_ROOT / "Snakefile")]


def _run(args: list[str], study: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SNAKEMAKE, *args, "--directory", str(study)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean(template_study: Path) -> None:
    result = _run(["--lint"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


def test_dry_run_plans_contract_outputs(template_study: Path) -> None:
    result = _run(["-n", "--cores", "1", "--quiet", "rules"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for rule in ("markers", "scale", "ik", "id", "collect", "calibrate", "execute", "report"):
        assert rule in output, f"rule {rule} not planned:\n{output}"


def test_invalid_study_stops_workflow_with_clear_message(template_study: Path) -> None:
    (template_study / "c3d/s01/flex2.c3d").unlink()
    result = _run(["-n", "--cores", "1"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "trials.tsv row 8: file c3d/s01/flex2.c3d does not exist" in output
