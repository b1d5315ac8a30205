# Figures per subject and the study's self-contained HTML report (pipeline/plots, pipeline/report).
# A subject's figures are drawn in parts, each on one core as soon as what it shows exists (so
# they fill the gaps beside the long calibrations): data_figures (the movement data's, once the
# trials are processed) and method_figures (per method, once it calibrated and validated);
# figures links the parts together and draws the convergence and the method comparison. Every
# processing and calibration rule has priority 1, these the default 0: a ready processing or
# calibration job goes first (it leads to a long calibration) and figures fill the cores it
# leaves free (a negative priority would keep them out of Snakemake's ILP job selection
# whenever anything else is ready).
# STUDY, PIPELINE, METHODS and the trial helpers come from common.smk.
#
# Each rule's params carry the hash of exactly what it reads (rule_reads, common.smk), so a
# changed setting reruns it; upstream changes reach it through its inputs. Input functions:
# common.smk.


rule data_figures:
    input:
        unpack(get_data_figure_inputs),
    output:
        figures=directory("results/{subject}/figure_parts/data"),
    params:
        reads=rule_reads("data_figures"),
        cmd=PIPELINE,
    threads: 1
    log:
        "logs/figures/{subject}/data.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/figures/{subject}/data.tsv"
    shell:
        "{params.cmd} --log {log} figures --study . --subject {wildcards.subject}"
        " --out-dir {output.figures} --part data"


rule method_figures:
    input:
        unpack(get_method_figure_inputs),
    output:
        figures=directory("results/{subject}/figure_parts/{method}"),
    wildcard_constraints:
        method="|".join(METHODS),
    params:
        reads=rule_reads("method_figures"),
        cmd=PIPELINE,
    threads: 1
    log:
        "logs/figures/{subject}/{method}.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/figures/{subject}/{method}.tsv"
    shell:
        "{params.cmd} --log {log} figures --study . --subject {wildcards.subject}"
        " --out-dir {output.figures} --methods {wildcards.method} --part {wildcards.method}"


rule figures:
    input:
        unpack(get_figure_inputs),
    output:
        figures=report(
            directory("results/{subject}/figures"),
            patterns=["{name}.png"],
            caption="../../report/captions/figures.rst",
            category="Figures",
            subcategory="{subject}",
        ),
    params:
        reads=rule_reads("figures"),
        cmd=PIPELINE,
        methods=" ".join(METHODS),
    log:
        "logs/figures/{subject}.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/figures/{subject}.tsv"
    shell:
        "{params.cmd} --log {log} figures --study . --subject {wildcards.subject}"
        " --out-dir {output.figures} --methods {params.methods} --parts {input.parts}"


rule report:
    input:
        unpack(get_report_inputs),
    output:
        html="results/report.html",
    params:
        reads=rule_reads("report"),
        cmd=PIPELINE,
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
