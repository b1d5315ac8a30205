# EMG-informed neuromusculoskeletal calibration.
# Run from the project root:  snakemake --cores N --directory my_study
# The study folder holds config.yaml, subjects.tsv and trials.tsv (see README.md).


include: "rules/common.smk"
include: "rules/preprocess.smk"
include: "rules/given.smk"
include: "rules/opensim.smk"
include: "rules/calibrate.smk"
include: "rules/synergies.smk"
include: "rules/report.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
