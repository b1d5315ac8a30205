# OpenSim stage: scaling, IK, ID, muscle analysis and the per-trial NMS input file. Each rule calls
# one subcommand of the package (pipeline/cli/opensim_stage.py); the science is in pipeline.osim.
# STUDY and PIPELINE come from common.smk. Each tool also writes its resolved setup XML beside its
# outputs (setup_scale.xml, setup_ik.xml, setup_id.xml, muscle_analysis/setup_analyze.xml).


rule scale:
    priority: 1
    input:
        unpack(get_scale_files),
        trc=get_static_trc,
    output:
        osim="results/{subject}/model/scaled.osim",
        report="results/{subject}/model/scale_report.json",
    wildcard_constraints:
        subject=ONLY["scale"],
    params:
        reads=rule_reads("scale"),
        cli=PIPELINE,
    log:
        "logs/scale/{subject}.log",
    benchmark:
        "benchmarks/scale/{subject}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} scale --study . --subject {wildcards.subject}"
        " --static-trc {input.trc} --out {output.osim} --report {output.report}"


rule ik:
    priority: 1
    input:
        osim="results/{subject}/model/scaled.osim",
        trc="results/{subject}/trials/{trial}/markers.trc",
    output:
        mot="results/{subject}/trials/{trial}/ik.mot",
        errors="results/{subject}/trials/{trial}/_ik_marker_errors.sto",
    wildcard_constraints:
        subject=ONLY["ik"],
    params:
        reads=rule_reads("ik"),
        cli=PIPELINE,
    log:
        "logs/ik/{subject}/{trial}.log",
    benchmark:
        "benchmarks/ik/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} ik --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --model {input.osim} --trc {input.trc} --out {output.mot}"


rule inverse_dynamics:
    priority: 1
    input:
        unpack(get_id_loads),
        osim="results/{subject}/model/scaled.osim",
        mot="results/{subject}/trials/{trial}/ik.mot",
    output:
        sto="results/{subject}/trials/{trial}/id.sto",
    wildcard_constraints:
        subject=ONLY["inverse_dynamics"],
    params:
        reads=rule_reads("inverse_dynamics"),
        cli=PIPELINE,
        loads=get_id_load_args,
    log:
        "logs/inverse_dynamics/{subject}/{trial}.log",
    benchmark:
        "benchmarks/inverse_dynamics/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} id --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --model {input.osim} --ik {input.mot} {params.loads}"
        " --out {output.sto}"


rule muscle_analysis:
    priority: 1
    input:
        osim="results/{subject}/model/scaled.osim",
        mot="results/{subject}/trials/{trial}/ik.mot",
    output:
        directory("results/{subject}/trials/{trial}/muscle_analysis"),
    params:
        reads=rule_reads("muscle_analysis"),
        cli=PIPELINE,
        window=get_window_args,
    log:
        "logs/muscle_analysis/{subject}/{trial}.log",
    benchmark:
        "benchmarks/muscle_analysis/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} muscle-analysis --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --model {input.osim} --ik {input.mot} {params.window}"
        " --out-dir {output}"


rule collect_nms_inputs:
    priority: 1
    input:
        unpack(get_events),
        emg="results/{subject}/trials/{trial}/emg.sto",
        mot="results/{subject}/trials/{trial}/ik.mot",
        sto="results/{subject}/trials/{trial}/id.sto",
        muscle_analysis="results/{subject}/trials/{trial}/muscle_analysis",
    output:
        npz="results/{subject}/trials/{trial}/nms_inputs.npz",
    params:
        reads=rule_reads("collect_nms_inputs"),
        cli=PIPELINE,
        events=get_events_arg,
    log:
        "logs/collect_nms_inputs/{subject}/{trial}.log",
    benchmark:
        "benchmarks/collect_nms_inputs/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} collect --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --emg {input.emg} --ik {input.mot} --id {input.sto}"
        " --muscle-analysis-dir {input.muscle_analysis} {params.events}"
        " --out {output.npz}"
