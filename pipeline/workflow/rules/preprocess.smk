# Preprocessing: C3D -> markers .trc, GRF .mot + ExternalLoads .xml, EMG envelopes and
# MVC-normalised excitations .sto, and per-trial time windows. Science lives in pipeline.signals;
# these rules only call the CLI. STUDY, PIPELINE and get_c3d come from common.smk.


rule markers:
    input:
        c3d=get_c3d,
    output:
        trc="results/{subject}/trials/{trial}/markers.trc",
    params:
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
    input:
        c3d=get_c3d,
    output:
        mot="results/{subject}/trials/{trial}/grf.mot",
        xml="results/{subject}/trials/{trial}/external_loads.xml",
    params:
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
    input:
        c3d=get_c3d,
    output:
        sto="results/{subject}/trials/{trial}/emg_envelope.sto",
    params:
        cli=PIPELINE,
    log:
        "logs/emg_envelope/{subject}/{trial}.log",
    benchmark:
        "benchmarks/emg_envelope/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} emg-envelope --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --out {output.sto}"


rule emg_maxima:
    input:
        envelopes=get_emg_maxima_envelopes,
    output:
        json="results/{subject}/emg_maxima.json",
    params:
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
    input:
        envelope="results/{subject}/trials/{trial}/emg_envelope.sto",
        maxima="results/{subject}/emg_maxima.json",
        trc="results/{subject}/trials/{trial}/markers.trc",
    output:
        sto="results/{subject}/trials/{trial}/emg.sto",
    params:
        cli=PIPELINE,
    log:
        "logs/emg_normalise/{subject}/{trial}.log",
    benchmark:
        "benchmarks/emg_normalise/{subject}/{trial}.tsv"
    conda:
        "envs/pipeline.yaml"
    shell:
        "{params.cli} --log {log} emg-normalise --envelope {input.envelope}"
        " --maxima {input.maxima} --markers-trc {input.trc} --out {output.sto}"


rule events:
    input:
        c3d=get_c3d,
    output:
        json="results/{subject}/trials/{trial}/events.json",
    params:
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
