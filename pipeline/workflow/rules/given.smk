# Files a study gives instead of computing them (DESIGN.md, "Entering from OpenSim files"):
# subjects.tsv scaled_model; trials.tsv markers_file, grf_file + external_loads_file, ik_file,
# id_file, emg_file. Each rule checks one given file (units, columns) and places it at its
# contract path; the stage that would compute it is then not planned (ONLY, from common.smk,
# restricts every rule to the (subject, trial) pairs it serves). Science: pipeline/osim/given.py.


rule import_model:
    priority: 1
    input:
        source=get_scaled_model_source,
    output:
        osim="results/{subject}/model/scaled.osim",
    wildcard_constraints:
        subject=ONLY["import_model"],
    params:
        reads=rule_reads("import_model"),
        cli=PIPELINE,
    log:
        "logs/import_model/{subject}.log",
    benchmark:
        "benchmarks/import_model/{subject}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} import-model --study . --subject {wildcards.subject}"
        ' --source "{input.source}" --out {output.osim}'


rule import_markers:
    priority: 1
    input:
        source=given_file("markers_file"),
    output:
        trc="results/{subject}/trials/{trial}/markers.trc",
    wildcard_constraints:
        subject=ONLY["import_markers"],
    params:
        reads=rule_reads("import_markers"),
        cli=PIPELINE,
    log:
        "logs/import_markers/{subject}/{trial}.log",
    benchmark:
        "benchmarks/import_markers/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} import-file markers --study . --subject {wildcards.subject}"
        ' --trial {wildcards.trial} --source "{input.source}" --out {output.trc}'


rule import_grf:
    priority: 1
    input:
        source=given_file("grf_file"),
        xml=given_file("external_loads_file"),
    output:
        mot="results/{subject}/trials/{trial}/grf.mot",
        xml="results/{subject}/trials/{trial}/external_loads.xml",
    wildcard_constraints:
        subject=ONLY["import_grf"],
    params:
        reads=rule_reads("import_grf"),
        cli=PIPELINE,
    log:
        "logs/import_grf/{subject}/{trial}.log",
    benchmark:
        "benchmarks/import_grf/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} import-file grf --study . --subject {wildcards.subject}"
        ' --trial {wildcards.trial} --source "{input.source}" --xml-source "{input.xml}"'
        " --out {output.mot} --xml-out {output.xml}"


rule import_ik:
    priority: 1
    input:
        source=given_file("ik_file"),
    output:
        mot="results/{subject}/trials/{trial}/ik.mot",
    wildcard_constraints:
        subject=ONLY["import_ik"],
    params:
        reads=rule_reads("import_ik"),
        cli=PIPELINE,
    log:
        "logs/import_ik/{subject}/{trial}.log",
    benchmark:
        "benchmarks/import_ik/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} import-file ik --study . --subject {wildcards.subject}"
        ' --trial {wildcards.trial} --source "{input.source}" --out {output.mot}'


rule import_id:
    priority: 1
    input:
        source=given_file("id_file"),
    output:
        sto="results/{subject}/trials/{trial}/id.sto",
    wildcard_constraints:
        subject=ONLY["import_id"],
    params:
        reads=rule_reads("import_id"),
        cli=PIPELINE,
    log:
        "logs/import_id/{subject}/{trial}.log",
    benchmark:
        "benchmarks/import_id/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} import-file id --study . --subject {wildcards.subject}"
        ' --trial {wildcards.trial} --source "{input.source}" --out {output.sto}'


rule import_emg:
    priority: 1
    input:
        source=given_file("emg_file"),
    output:
        sto="results/{subject}/trials/{trial}/emg.sto",
    wildcard_constraints:
        subject=ONLY["import_emg"],
    params:
        reads=rule_reads("import_emg"),
        cli=PIPELINE,
    log:
        "logs/import_emg/{subject}/{trial}.log",
    benchmark:
        "benchmarks/import_emg/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} import-file emg --study . --subject {wildcards.subject}"
        ' --trial {wildcards.trial} --source "{input.source}" --out {output.sto}'
