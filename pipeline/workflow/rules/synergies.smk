# Synergy-hybrid calibration (paper 002, eq. 5) with its validation, and the optional
# channel-removal experiment (paper 002, Fig. 5). The science is in pipeline.synergies; rules only
# call the CLI. STUDY, PIPELINE, calibration_trials and validation_trials come from common.smk.
# Validation needs the calibrated synergy weightings, so one rule calibrates and validates.
# The study's truth.json (synthetic studies) is read when present, for r of the synthesised
# excitations in metrics.json; it is then an input of calibrate_synergy_hybrid (a change reruns it).


rule calibrate_synergy_hybrid:
    priority: 1
    input:
        unpack(get_synergy_calibration_inputs),
    output:
        parameters="results/{subject}/calibration/synergy_hybrid/parameters.json",
        metrics="results/{subject}/calibration/synergy_hybrid/metrics.json",
        osim="results/{subject}/calibration/synergy_hybrid/calibrated.osim",
        history="results/{subject}/calibration/synergy_hybrid/history.tsv",
        figure="results/{subject}/calibration/synergy_hybrid/synergies.png",
        execution=directory("results/{subject}/calibration/synergy_hybrid/execution"),
    params:
        reads=rule_reads("calibrate_synergy_hybrid"),
        cmd=PIPELINE,
        out_dir=subpath(output.parameters, parent=True),
    threads: 1
    log:
        "logs/calibrate/{subject}_synergy_hybrid.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/calibrate/{subject}_synergy_hybrid.tsv"
    shell:
        "{params.cmd} --log {log} calibrate-synergy --study . --subject {wildcards.subject}"
        " --model {input.model} --inputs {input.trials}"
        " --validation-inputs {input.validation} --out-dir {params.out_dir}"
        " --threads {threads} --no-progress"


rule channel_removal:
    priority: 1
    input:
        unpack(get_synergy_inputs),
    output:
        table="results/{subject}/experiments/channel_removal/channel_removal.tsv",
        ranking="results/{subject}/experiments/channel_removal/channel_ranking.tsv",
        figure="results/{subject}/experiments/channel_removal/channel_removal.png",
    params:
        reads=rule_reads("channel_removal"),
        cmd=PIPELINE,
        out_dir=subpath(output.table, parent=True),
    threads: 1
    log:
        "logs/experiments/{subject}_channel_removal.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/experiments/{subject}_channel_removal.tsv"
    shell:
        "{params.cmd} --log {log} experiment channel-removal --study ."
        " --subject {wildcards.subject} --model {input.model} --inputs {input.trials}"
        " --validation-inputs {input.validation} --out-dir {params.out_dir} --threads {threads}"
