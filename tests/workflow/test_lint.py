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


def planned_jobs(output: str) -> dict[str, int]:
    """The ``job count`` table of a dry run (``--quiet rules``) as {rule: number of jobs}."""
    jobs = {}
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            break
        jobs[fields[0]] = int(fields[1])
    return jobs


def test_dry_run_plans_contract_outputs(template_study: Path) -> None:
    """The template study (one demo-arm subject: static, mvc1, flex1 for calibration, flex2 for
    validation; gradient only) plans one job per trial and stage it needs, and no force plates."""
    result = _run(["-n", "--cores", "1", "--quiet", "rules"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    jobs = planned_jobs(output)
    expected = {"markers": 3, "emg_envelope": 3, "emg_maxima": 1, "emg_normalise": 2, "events": 2,
                "scale": 1, "ik": 2, "inverse_dynamics": 2, "muscle_analysis": 2,
                "collect_nms_inputs": 2, "calibrate": 1, "execute": 1, "figures": 1, "report": 1}
    assert {rule: jobs.get(rule) for rule in expected} == expected, output
    assert "forceplates" not in jobs, output


def test_invalid_study_stops_workflow_with_clear_message(template_study: Path) -> None:
    (template_study / "c3d/s01/flex2.c3d").unlink()
    result = _run(["-n", "--cores", "1"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "trials.tsv row 8: file c3d/s01/flex2.c3d does not exist" in output
