"""Where the results of a study go: the one module that spells the DESIGN.md output paths.

Every function returns a POSIX path relative to the study folder (the workflow's working
directory) as a string, which is what Snakemake's input functions want; join it to a study root
for a file path. Wildcards pass through, so ``method_file("{subject}", "{method}",
"parameters.json")`` is a rule's output pattern::

    results/report.html                                   REPORT
    results/<subject>/model/scaled.osim                   scaled_model(subject)
    results/<subject>/trials/<trial>/<file>               trial_file(subject, trial, file)
    results/<subject>/trials/<trial>/nms_inputs.npz       nms_inputs(subject, trial)
    results/<subject>/calibration/<method>/<file>         method_file(subject, method, file)
    results/<subject>/calibration/<method>/execution/     execution_dir(subject, method)
    results/<subject>/figures/                            figures_dir(subject)
    results/generic_models/                               GENERIC_MODELS

``rules/common.smk`` builds every input function from these, and the package (figures, report)
reads results through them.
"""

from __future__ import annotations

RESULTS = "results"
REPORT = f"{RESULTS}/report.html"
GENERIC_MODELS = f"{RESULTS}/generic_models"
#: The files of one calibration method that the figures and the report read.
METHOD_FILES = ("parameters.json", "metrics.json", "history.tsv")


def subject_dir(subject: str) -> str:
    return f"{RESULTS}/{subject}"


def scaled_model(subject: str) -> str:
    return f"{subject_dir(subject)}/model/scaled.osim"


def trial_dir(subject: str, trial: str) -> str:
    return f"{subject_dir(subject)}/trials/{trial}"


def trial_file(subject: str, trial: str, name: str) -> str:
    return f"{trial_dir(subject, trial)}/{name}"


def nms_inputs(subject: str, trial: str) -> str:
    return trial_file(subject, trial, "nms_inputs.npz")


def method_dir(subject: str, method: str) -> str:
    return f"{subject_dir(subject)}/calibration/{method}"


def method_file(subject: str, method: str, name: str) -> str:
    return f"{method_dir(subject, method)}/{name}"


def execution_dir(subject: str, method: str) -> str:
    return f"{method_dir(subject, method)}/execution"


def figures_dir(subject: str) -> str:
    return f"{subject_dir(subject)}/figures"


def figure_part_dir(subject: str, part: str) -> str:
    """One part of a subject's figures (the movement data's, or a method's), drawn as soon as
    what it shows exists; figures_dir links them all."""
    return f"{subject_dir(subject)}/figure_parts/{part}"
