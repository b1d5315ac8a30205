# Figures per subject and the study's self-contained HTML report (pipeline/plots, pipeline/report).
# STUDY, PIPELINE, METHODS and the trial helpers come from common.smk.
#
# Rerun selectivity: each rule passes the hash of only the config sections it reads as a params
# value, so Snakemake's params rerun trigger reruns it when (and only when) those change;
# upstream changes reach it through its inputs.
from pipeline.provenance import config_section_hash


def get_method_outputs(subject):
    """parameters.json, metrics.json and history.tsv of every calibration method."""
    files = {}
    for method in METHODS:
        base = Path("results", subject, "calibration", method)
        files[f"{method}_parameters"] = str(base / "parameters.json")
        files[f"{method}_metrics"] = str(base / "metrics.json")
        files[f"{method}_history"] = str(base / "history.tsv")
    return files


def get_figure_inputs(wildcards):
    """Calibration outputs per method plus the trial files the figures read."""
    subject = wildcards.subject
    trials = calibration_trials(subject) + validation_trials(subject)
    files = get_method_outputs(subject)
    files["nms_inputs"] = [str(trial_dir(subject, t) / "nms_inputs.npz") for t in trials]
    files["marker_errors"] = [
        str(trial_dir(subject, t) / "_ik_marker_errors.sto") for t in dynamic_trials(subject)
    ]
    if STUDY.model_setup(subject).get("force_plates"):
        files["grf"] = [str(trial_dir(subject, t) / "grf.mot") for t in dynamic_trials(subject)]
    return files


def get_report_inputs(wildcards):
    """Every subject's figure folder and calibration outputs."""
    files = {"figures": [f"results/{s}/figures" for s in STUDY.subject_names]}
    for subject in STUDY.subject_names:
        for key, path in get_method_outputs(subject).items():
            files[f"{subject}_{key}"] = path
    return files


rule figures:
    input:
        unpack(get_figure_inputs),
    output:
        figures=report(
            directory("results/{subject}/figures"),
            patterns=["{name}.png"],
            caption="../pipeline/report/captions/figures.rst",
            category="Figures",
            subcategory="{subject}",
        ),
    params:
        cmd=PIPELINE,
        config_sha256=config_section_hash(
            config, "calibration.methods", "calibration.penalties", "opensim.ik"
        ),
        methods=" ".join(METHODS),
    log:
        "logs/figures/{subject}.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/figures/{subject}.tsv"
    shell:
        "{params.cmd} --log {log} figures --study . --subject {wildcards.subject}"
        " --out-dir {output.figures} --methods {params.methods}"


rule report:
    input:
        unpack(get_report_inputs),
    output:
        html="results/report.html",
    params:
        cmd=PIPELINE,
        config_sha256=config_section_hash(config, "calibration.methods"),
        methods=" ".join(METHODS),
    log:
        "logs/report.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/report.tsv"
    shell:
        "{params.cmd} --log {log} report --study . --out {output.html}"
        " --methods {params.methods}"
