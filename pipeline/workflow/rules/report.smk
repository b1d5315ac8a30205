# Figures per subject and the study's self-contained HTML report (pipeline/plots, pipeline/report).
# The movement data's figures need no calibration, so data_figures draws them as soon as a
# subject's trials are processed (one core, filling the gaps beside the long calibrations);
# figures draws the calibration results' figures and links those in.
# STUDY, PIPELINE, METHODS and the trial helpers come from common.smk.
#
# Each rule's params carry the hash of exactly what it reads (rule_reads, common.smk), so a
# changed setting reruns it; upstream changes reach it through its inputs. Input functions:
# common.smk.


rule data_figures:
    input:
        unpack(get_data_figure_inputs),
    output:
        figures=directory("results/{subject}/data_figures"),
    params:
        reads=rule_reads("data_figures"),
        cmd=PIPELINE,
    threads: 1
    log:
        "logs/figures/{subject}_data.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/figures/{subject}_data.tsv"
    shell:
        "{params.cmd} --log {log} figures --study . --subject {wildcards.subject}"
        " --out-dir {output.figures} --data-only"


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
    threads: 2
    log:
        "logs/figures/{subject}.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/figures/{subject}.tsv"
    shell:
        "{params.cmd} --log {log} figures --study . --subject {wildcards.subject}"
        " --out-dir {output.figures} --methods {params.methods} --threads {threads}"
        " --data-figures {input.data_figures}"


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
