# The one place for Python in the workflow: load and validate the study with the package's own
# validator, derive wildcard constraints from the sheets, and define the get_* input functions.
import sys
from pathlib import Path

from pipeline.study import load_study

STUDY = load_study(".")
config.update(STUDY.config)
# The rules call the package with the interpreter that runs Snakemake (the project's venv).
PIPELINE = f'"{sys.executable}" -m pipeline'
METHODS = STUDY.config["calibration"]["methods"]


wildcard_constraints:
    subject="|".join(STUDY.subject_names),
    trial="|".join(sorted({row["trial"] for row in STUDY.trials})),
    method="gradient|annealing|synergy_hybrid",


def trial_dir(subject, trial):
    return Path("results", subject, "trials", trial)


def dynamic_trials(subject):
    return [r["trial"] for r in STUDY.trials_of(subject, kind="dynamic")]


def calibration_trials(subject):
    return [r["trial"] for r in STUDY.trials_of(subject, role="calibration")]


def validation_trials(subject):
    return [r["trial"] for r in STUDY.trials_of(subject, role="validation")]


def get_c3d(wildcards):
    return str(STUDY.c3d_path(wildcards.subject, wildcards.trial))


def get_static_c3d(wildcards):
    row = STUDY.static_trial(wildcards.subject)
    return str(STUDY.root / row["file"])


def all_outputs():
    """Every output of the DESIGN.md contract for every subject and calibration method."""
    targets = ["results/report.html"]
    for subject in STUDY.subject_names:
        targets.append(f"results/{subject}/model/scaled.osim")
        for method in METHODS:
            base = f"results/{subject}/calibration/{method}"
            targets += [f"{base}/parameters.json", f"{base}/metrics.json",
                        f"{base}/calibrated.osim"]
    return targets
