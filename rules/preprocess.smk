# Preprocessing: C3D -> markers .trc, GRF .mot + ExternalLoads .xml, EMG envelopes and
# MVC-normalised excitations .sto, and per-trial time windows. Science lives in pipeline.signals;
# these rules only call the CLI. STUDY, PIPELINE and get_c3d come from common.smk.


def get_emg_maxima_envelopes(wildcards):
    """Envelopes of the subject's MVC trials, or of its dynamic trials when it has none."""
    rows = STUDY.trials_of(wildcards.subject, kind="mvc") or STUDY.trials_of(
        wildcards.subject, kind="dynamic"
    )
    return [
        str(Path("results", wildcards.subject, "trials", row["trial"], "emg_envelope.sto"))
        for row in rows
    ]


rule markers:
    input:
        c3d=get_c3d,
    output:
        trc="results/{subject}/trials/{trial}/markers.trc",
    log:
        "logs/markers/{subject}/{trial}.log",
    benchmark:
        "benchmarks/markers/{subject}/{trial}.tsv"
    shell:
        "{PIPELINE} --log {log} markers --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --out {output.trc}"


rule forceplates:
    input:
        c3d=get_c3d,
    output:
        mot="results/{subject}/trials/{trial}/grf.mot",
        xml="results/{subject}/trials/{trial}/external_loads.xml",
    log:
        "logs/forceplates/{subject}/{trial}.log",
    benchmark:
        "benchmarks/forceplates/{subject}/{trial}.tsv"
    shell:
        "{PIPELINE} --log {log} forceplates --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --mot {output.mot} --xml {output.xml}"


rule emg_envelope:
    input:
        c3d=get_c3d,
    output:
        sto="results/{subject}/trials/{trial}/emg_envelope.sto",
    log:
        "logs/emg_envelope/{subject}/{trial}.log",
    benchmark:
        "benchmarks/emg_envelope/{subject}/{trial}.tsv"
    shell:
        "{PIPELINE} --log {log} emg-envelope --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --out {output.sto}"


rule emg_maxima:
    input:
        envelopes=get_emg_maxima_envelopes,
    output:
        json="results/{subject}/emg_maxima.json",
    log:
        "logs/emg_maxima/{subject}.log",
    benchmark:
        "benchmarks/emg_maxima/{subject}.tsv"
    shell:
        "{PIPELINE} --log {log} emg-maxima --study . --subject {wildcards.subject}"
        " --envelopes {input.envelopes} --out {output.json}"


rule emg_normalise:
    input:
        envelope="results/{subject}/trials/{trial}/emg_envelope.sto",
        maxima="results/{subject}/emg_maxima.json",
        trc="results/{subject}/trials/{trial}/markers.trc",
    output:
        sto="results/{subject}/trials/{trial}/emg.sto",
    log:
        "logs/emg_normalise/{subject}/{trial}.log",
    benchmark:
        "benchmarks/emg_normalise/{subject}/{trial}.tsv"
    shell:
        "{PIPELINE} --log {log} emg-normalise --envelope {input.envelope}"
        " --maxima {input.maxima} --markers-trc {input.trc} --out {output.sto}"


rule events:
    input:
        c3d=get_c3d,
    output:
        json="results/{subject}/trials/{trial}/events.json",
    log:
        "logs/events/{subject}/{trial}.log",
    benchmark:
        "benchmarks/events/{subject}/{trial}.tsv"
    shell:
        "{PIPELINE} --log {log} events --study . --subject {wildcards.subject}"
        " --trial {wildcards.trial} --out {output.json}"
