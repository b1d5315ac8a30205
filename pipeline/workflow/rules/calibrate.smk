# Calibration of the EMG-driven NMS model (gradient or simulated annealing) and its open-loop
# execution on the validation trials. The science is in pipeline.calibrate; rules only call the
# CLI. STUDY, PIPELINE, calibration_trials and validation_trials come from common.smk.
# The synergy_hybrid method has its own rules; these match gradient and annealing only.


rule calibrate:
    input:
        unpack(get_calibration_inputs),
    output:
        parameters="results/{subject}/calibration/{method}/parameters.json",
        osim="results/{subject}/calibration/{method}/calibrated.osim",
        history="results/{subject}/calibration/{method}/history.tsv",
    wildcard_constraints:
        method="gradient|annealing",
    params:
        cmd=PIPELINE,
        config_sha256=config_section_hash(config, "calibration", "models"),
        out_dir=subpath(output.parameters, parent=True),
    log:
        "logs/calibrate/{subject}_{method}.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/calibrate/{subject}_{method}.tsv"
    shell:
        "{params.cmd} --log {log} calibrate --study . --subject {wildcards.subject}"
        " --method {wildcards.method} --model {input.model} --inputs {input.trials}"
        " --out-dir {params.out_dir} --no-progress"


rule execute:
    input:
        unpack(get_validation_inputs),
    output:
        metrics="results/{subject}/calibration/{method}/metrics.json",
        execution=directory("results/{subject}/calibration/{method}/execution"),
    wildcard_constraints:
        method="gradient|annealing",
    params:
        cmd=PIPELINE,
        out_dir=subpath(output.metrics, parent=True),
    log:
        "logs/calibrate/{subject}_{method}_execute.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/execute/{subject}_{method}.tsv"
    shell:
        "{params.cmd} --log {log} execute --study . --subject {wildcards.subject}"
        " --method {wildcards.method} --parameters {input.parameters}"
        " --inputs {input.trials} --out-dir {params.out_dir}"
