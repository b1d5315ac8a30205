# Calibration of the EMG-driven NMS model (gradient or simulated annealing) and its open-loop
# execution on the validation trials (metrics) and the calibration trials (outputs for figures). The science is in pipeline.calibrate; rules only call the
# CLI. STUDY, PIPELINE, calibration_trials and validation_trials come from common.smk.
# The synergy_hybrid method has its own rules; calibrate matches gradient and annealing,
# calibrate_motion the motion method (equation error on the IK motion and external loads).


rule calibrate:
    priority: 1
    input:
        unpack(get_calibration_inputs),
    output:
        parameters="results/{subject}/calibration/{method}/parameters.json",
        osim="results/{subject}/calibration/{method}/calibrated.osim",
        history="results/{subject}/calibration/{method}/history.tsv",
    wildcard_constraints:
        method="gradient|annealing",
    params:
        reads=rule_reads("calibrate"),
        cmd=PIPELINE,
        out_dir=subpath(output.parameters, parent=True),
        initial=get_initial_parameters_arg,
    threads: 1
    log:
        "logs/calibrate/{subject}_{method}.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/calibrate/{subject}_{method}.tsv"
    shell:
        "{params.cmd} --log {log} calibrate --study . --subject {wildcards.subject}"
        " --method {wildcards.method} --model {input.model} --inputs {input.trials}"
        " {params.initial} --out-dir {params.out_dir} --threads {threads} --no-progress"


rule calibrate_motion:
    priority: 1
    input:
        unpack(get_motion_inputs),
    output:
        parameters="results/{subject}/calibration/motion/parameters.json",
        osim="results/{subject}/calibration/motion/calibrated.osim",
        history="results/{subject}/calibration/motion/history.tsv",
    params:
        reads=rule_reads("calibrate_motion"),
        cmd=PIPELINE,
        out_dir=subpath(output.parameters, parent=True),
        initial=get_initial_parameters_arg,
        loads=get_motion_load_args,
    threads: 1
    log:
        "logs/calibrate/{subject}_motion.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/calibrate/{subject}_motion.tsv"
    shell:
        "{params.cmd} --log {log} calibrate --study . --subject {wildcards.subject}"
        " --method motion --model {input.model} --inputs {input.trials} --ik {input.ik}"
        " {params.loads} {params.initial} --out-dir {params.out_dir} --threads {threads}"
        " --no-progress"


rule execute:
    priority: 1
    input:
        unpack(get_validation_inputs),
    output:
        metrics="results/{subject}/calibration/{method}/metrics.json",
        execution=directory("results/{subject}/calibration/{method}/execution"),
    wildcard_constraints:
        method="gradient|annealing|motion",
    params:
        reads=rule_reads("execute"),
        cmd=PIPELINE,
        out_dir=subpath(output.metrics, parent=True),
    threads: 1
    log:
        "logs/calibrate/{subject}_{method}_execute.log",
    conda:
        "envs/pipeline.yaml"
    benchmark:
        "benchmarks/execute/{subject}_{method}.tsv"
    shell:
        "{params.cmd} --log {log} execute --study . --subject {wildcards.subject}"
        " --method {wildcards.method} --parameters {input.parameters}"
        " --inputs {input.trials} --calibration-inputs {input.calibration_trials}"
        " --out-dir {params.out_dir} --threads {threads}"
