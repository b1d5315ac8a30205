"""Workflow backbone: `snakemake --lint` is clean and a dry run plans every contract output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from project_paths import PROJECT_ROOT
from workflow_helpers import planned_jobs

from pipeline.cli.workflow import snakemake_environment

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT_ROOT / "Snakefile")]


def _run(args: list[str], study: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SNAKEMAKE, *args, "--directory", str(study)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=snakemake_environment(os.environ, profile=None, snakemake_args=args))


def test_snakemake_lint_is_clean(template_study: Path) -> None:
    result = _run(["--lint"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


def test_dry_run_plans_contract_outputs(template_study: Path) -> None:
    """The template study (one demo-arm subject: static, mvc1, flex1 for calibration, flex2 for
    validation; gradient only) plans one job per trial and stage it needs, and no force plates."""
    result = _run(["-n", "--cores", "1", "--quiet", "rules"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    jobs = planned_jobs(output)
    expected = {"markers": 3, "emg_envelope": 3, "emg_maxima": 1, "emg_normalise": 2, "events": 2,
                "scale": 1, "ik": 2, "inverse_dynamics": 2, "muscle_analysis": 2,
                "collect_nms_inputs": 2, "calibrate": 1, "execute": 1, "data_figures": 1,
                "method_figures": 1, "figures": 1, "report": 1}
    assert {rule: jobs.get(rule) for rule in expected} == expected, output
    assert "forceplates" not in jobs, output


def test_invalid_study_stops_workflow_with_clear_message(template_study: Path) -> None:
    (template_study / "c3d/s01/flex2.c3d").unlink()
    result = _run(["-n", "--cores", "1"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "trials.tsv row 8: file c3d/s01/flex2.c3d does not exist" in output


def test_rule_threads_reach_torch(template_study: Path) -> None:
    """A profile's set-threads (the SLURM profile's) becomes calibrate's --threads, which the CLI
    hands to torch.set_num_threads."""
    result = _run(["-n", "--cores", "4", "--printshellcmds", "--set-threads", "calibrate=3",
                   "--until", "calibrate"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    commands = [line for line in output.splitlines() if " calibrate --study" in line]
    assert commands and all("--threads 3" in line for line in commands), output


def planned_files(output: str) -> dict[str, list[tuple[set[str], set[str]]]]:
    """{rule: [(inputs, outputs) of each job]} from a dry run's job listing."""
    jobs: dict[str, list[tuple[set[str], set[str]]]] = {}
    rule = None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
            jobs.setdefault(rule, []).append((set(), set()))
        elif rule and line.strip().startswith(("input:", "output:")):
            key, _, files = line.strip().partition(":")
            jobs[rule][-1][0 if key == "input" else 1].update(f.strip() for f in files.split(","))
    return jobs


def test_rules_read_and_write_the_layout(template_study: Path) -> None:
    """The input functions of common.smk and the rules' outputs name the paths of
    pipeline.layout, for every calibration method (the one place the package reads them from)."""
    from pipeline import layout

    config = template_study / "config.yaml"
    config.write_text(config.read_text().replace("methods: [gradient]",
                                                 "methods: [gradient, annealing]"))
    result = _run(["-n", "--cores", "1"], template_study)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    jobs = planned_files(output)
    methods, modelled = ("gradient", "annealing"), ("flex1", "flex2")
    method_files = {layout.method_file("s01", m, f) for m in methods for f in layout.METHOD_FILES}
    (figures,) = jobs["figures"]
    (data_figures,) = jobs["data_figures"]
    # The per-cycle figures read each dynamic trial's IK, ID, events, EMG and EMG quality
    # (drawn before calibration); each method's figures its results and the NMS inputs; the
    # figures folder links the parts and draws the convergence and the comparison.
    per_trial = ("_ik_marker_errors.sto", "ik.mot", "id.sto", "events.json", "emg.sto",
                 "emg_quality.json")
    parts = {layout.figure_part_dir("s01", p) for p in ("data", *methods)}
    assert data_figures == ({layout.trial_file("s01", t, f) for t in modelled
                             for f in per_trial}, {layout.figure_part_dir("s01", "data")})
    assert sorted(jobs["method_figures"], key=lambda job: sorted(job[1])) == [
        ({layout.method_file("s01", m, f) for f in layout.METHOD_FILES}
         | {layout.nms_inputs("s01", t) for t in modelled}, {layout.figure_part_dir("s01", m)})
        for m in sorted(methods)]
    assert figures == (method_files | parts, {layout.figures_dir("s01")})
    (report,) = jobs["report"]
    # The report's scale table, EMG warnings and EMG onset table read the scale report, the
    # EMG quality files and the cycles (events.json) the onsets are placed in.
    read_by_report = {layout.figures_dir("s01"), "results/s01/model/scale_report.json"}
    read_by_report |= {layout.trial_file("s01", t, f) for t in modelled
                       for f in ("emg_quality.json", "events.json")}
    # ... and the MVC trial's EMG quality: a low-SNR channel is judged across all trials.
    read_by_report |= {layout.trial_file("s01", "mvc1", "emg_quality.json")}
    assert report == (method_files | read_by_report, {layout.REPORT})
    calibrate_outputs = set().union(*(outputs for _, outputs in jobs["calibrate"]))
    assert {layout.method_file("s01", m, "calibrated.osim") for m in methods} <= calibrate_outputs
    execute_inputs = set().union(*(inputs for inputs, _ in jobs["execute"]))
    assert {layout.nms_inputs("s01", t) for t in modelled} <= execute_inputs
    (scale,) = jobs["scale"]
    assert layout.scaled_model("s01") in scale[1]
