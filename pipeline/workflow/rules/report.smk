# Figures per subject and the study's self-contained HTML report (pipeline/plots, pipeline/report).
# STUDY, PIPELINE, METHODS and the trial helpers come from common.smk.
#
# Rerun selectivity: each rule passes the hash of only the config sections it reads as a params
# value, so Snakemake's params rerun trigger reruns it when (and only when) those change;
# upstream changes reach it through its inputs.
from functools import partial

from pipeline.provenance import config_section_hash
from pipeline.report.inputs import figure_inputs, report_inputs

# Input functions (pipeline/report/inputs.py), bound to this study.
get_figure_inputs = partial(figure_inputs, STUDY, METHODS)
get_report_inputs = partial(report_inputs, STUDY, METHODS)


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
