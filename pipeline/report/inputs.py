"""Input files of the ``figures`` and ``report`` rules (paths of the DESIGN.md contract).

``rules/report.smk`` binds these to the study with :func:`functools.partial`, which keeps the
rules file free of function definitions (``snakemake --lint``) and this logic testable::

    get_figure_inputs = partial(figure_inputs, STUDY, METHODS)

Paths are relative to the study folder (the workflow's working directory).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.plan import COMPUTED, study_plans
from pipeline.study import Study


def method_outputs(subject: str, methods: Sequence[str]) -> dict[str, str]:
    """parameters.json, metrics.json and history.tsv of every calibration method."""
    files = {}
    for method in methods:
        base = f"results/{subject}/calibration/{method}"
        files[f"{method}_parameters"] = f"{base}/parameters.json"
        files[f"{method}_metrics"] = f"{base}/metrics.json"
        files[f"{method}_history"] = f"{base}/history.tsv"
    return files


def figure_inputs(study: Study, methods: Sequence[str], wildcards: Any) -> dict[str, Any]:
    """Calibration outputs per method plus the trial files one subject's figures read."""
    subject = wildcards.subject
    dynamic = [r["trial"] for r in study.trials_of(subject, kind="dynamic")]
    modelled = [r["trial"] for r in study.trials_of(subject, kind="dynamic")
                if r["role"] in ("calibration", "validation")]
    files: dict[str, Any] = dict(method_outputs(subject, methods))
    trials = f"results/{subject}/trials"
    files["nms_inputs"] = [f"{trials}/{t}/nms_inputs.npz" for t in modelled]
    # Trials that give their IK or GRF files (pipeline.plan) have no IK marker errors or no GRF.
    plans = {p.trial: p for p in study_plans(study) if p.subject == subject}
    files["marker_errors"] = [f"{trials}/{t}/_ik_marker_errors.sto" for t in dynamic
                              if plans[t].ik == COMPUTED]
    grf = [f"{trials}/{t}/grf.mot" for t in dynamic if plans[t].grf is not None]
    if grf:
        files["grf"] = grf
    return files


def report_inputs(study: Study, methods: Sequence[str], wildcards: Any) -> dict[str, Any]:
    """Every subject's figure folder and calibration outputs."""
    files: dict[str, Any] = {"figures": [f"results/{s}/figures" for s in study.subject_names]}
    for subject in study.subject_names:
        for key, path in method_outputs(subject, methods).items():
            files[f"{subject}_{key}"] = path
    return files
