# Preprocessing: C3D -> markers .trc, GRF .mot + ExternalLoads .xml, EMG envelopes and
# MVC-normalised excitations .sto, and per-trial time windows. Science lives in pipeline.signals;
# these rules only call the CLI. STUDY, PIPELINE and get_c3d come from common.smk.


rule markers:
    priority: 1
    input:
        c3d=get_c3d,
    output:
        trc="results/{subject}/trials/{trial}/markers.trc",
    wildcard_constraints:
        subject=ONLY["markers"],
    params:
        reads=rule_reads("markers"),
        cli=PIPELINE,
    log:
        "logs/markers/{subject}/{trial}.log",
    benchmark:
        "benchmarks/markers/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} markers --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --out {output.trc}"


rule forceplates:
    priority: 1
    input:
        c3d=get_c3d,
    output:
        mot="results/{subject}/trials/{trial}/grf.mot",
        xml="results/{subject}/trials/{trial}/external_loads.xml",
    wildcard_constraints:
        subject=ONLY["forceplates"],
    params:
        reads=rule_reads("forceplates"),
        cli=PIPELINE,
    log:
        "logs/forceplates/{subject}/{trial}.log",
    benchmark:
        "benchmarks/forceplates/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} forceplates --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --mot {output.mot} --xml {output.xml}"


rule emg_envelope:
    priority: 1
    input:
        unpack(get_emg_source),
    output:
        sto="results/{subject}/trials/{trial}/emg_envelope.sto",
        quality="results/{subject}/trials/{trial}/emg_quality.json",
    wildcard_constraints:
        subject=ONLY["emg_envelope"],
    params:
        reads=rule_reads("emg_envelope"),
        cli=PIPELINE,
        source=get_emg_source_arg,
    log:
        "logs/emg_envelope/{subject}/{trial}.log",
    benchmark:
        "benchmarks/emg_envelope/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} emg-envelope --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} {params.source} --out {output.sto}"
        " --quality {output.quality}"


rule emg_maxima:
    priority: 1
    input:
        envelopes=get_emg_maxima_envelopes,
    output:
        json="results/{subject}/emg_maxima.json",
    params:
        reads=rule_reads("emg_maxima"),
        cli=PIPELINE,
    log:
        "logs/emg_maxima/{subject}.log",
    benchmark:
        "benchmarks/emg_maxima/{subject}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} emg-maxima --study . --subject {wildcards.subject}"
        " --envelopes {input.envelopes} --out {output.json}"


rule emg_normalise:
    priority: 1
    input:
        unpack(get_emg_time_base),
        envelope="results/{subject}/trials/{trial}/emg_envelope.sto",
        maxima="results/{subject}/emg_maxima.json",
    output:
        sto="results/{subject}/trials/{trial}/emg.sto",
    wildcard_constraints:
        subject=ONLY["emg_normalise"],
    params:
        reads=rule_reads("emg_normalise"),
        cli=PIPELINE,
        time_base=get_emg_time_base_arg,
    log:
        "logs/emg_normalise/{subject}/{trial}.log",
    benchmark:
        "benchmarks/emg_normalise/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} emg-normalise --envelope {input.envelope}"
        " --maxima {input.maxima} {params.time_base} --out {output.sto}"


rule events:
    priority: 1
    input:
        c3d=get_c3d,
    output:
        json="results/{subject}/trials/{trial}/events.json",
    wildcard_constraints:
        subject=ONLY["events"],
    params:
        reads=rule_reads("events"),
        cli=PIPELINE,
    log:
        "logs/events/{subject}/{trial}.log",
    benchmark:
        "benchmarks/events/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} events --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --out {output.json}"
