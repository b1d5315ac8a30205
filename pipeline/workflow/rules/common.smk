# The one place for Python in the workflow: load and validate the study with the package's own
# validator, derive wildcard constraints from the sheets, and define the get_* input functions.
#
# Reruns: every rule passes rule_reads(<rule>) as a params value, the hash of exactly the config
# keys and sheet cells its CLI step reads (pipeline/rule_params.py), and takes every file it
# reads as an input, with study-relative paths. Snakemake's params/input/mtime rerun triggers
# then rerun a job when, and only when, something it reads changed.
import sys
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.rule_params import scale_file_inputs, step_hash, study_relative
from pipeline.study import load_study

try:
    # Every check that needs no job (sheets, config, C3D contents, model files) runs here, so
    # a mistake is reported before the first job, as one line per problem and no stack. A job
    # that a cluster runs re-reads this file: the data were checked before it was submitted.
    STUDY = load_study(".", check_data=not (workflow.remote_exec or workflow.subprocess_exec))
except PipelineError as exc:
    print(f"Invalid study, nothing was run:\n{exc}", file=sys.stderr)
    sys.exit(2)
config.update(STUDY.config)
# The rules call the package with the interpreter that runs Snakemake (the project's venv).
PIPELINE = f'"{sys.executable}" -m pipeline'
METHODS = STUDY.config["calibration"]["methods"]


wildcard_constraints:
    subject="|".join(STUDY.subject_names),
    trial="|".join(sorted({row["trial"] for row in STUDY.trials})),
    method="gradient|annealing|synergy_hybrid",


def trial_dir(subject, trial):
    return Path("results", subject, "trials", trial)


def dynamic_trials(subject):
    return [r["trial"] for r in STUDY.trials_of(subject, kind="dynamic")]


def calibration_trials(subject):
    return [r["trial"] for r in STUDY.trials_of(subject, role="calibration")]


def validation_trials(subject):
    return [r["trial"] for r in STUDY.trials_of(subject, role="validation")]


def rule_reads(step):
    """Params function: hash of the settings and sheet cells the step reads for a job."""
    return lambda wildcards: step_hash(
        STUDY, step, wildcards.get("subject"), wildcards.get("trial")
    )


def get_c3d(wildcards):
    """The trial's C3D file, relative to the study when inside it (a copied study stays valid)."""
    return study_relative(STUDY.root, STUDY.trial(wildcards.subject, wildcards.trial)["file"])


def get_static_c3d(wildcards):
    return study_relative(STUDY.root, STUDY.static_trial(wildcards.subject)["file"])


def get_scale_files(wildcards):
    """The subject's own .osim and the study's marker and measurement set files."""
    return scale_file_inputs(STUDY, wildcards.subject)


def all_outputs():
    """Every output of the DESIGN.md contract for every subject and calibration method."""
    targets = ["results/report.html"]
    for subject in STUDY.subject_names:
        targets.append(f"results/{subject}/model/scaled.osim")
        for method in METHODS:
            base = f"results/{subject}/calibration/{method}"
            targets += [f"{base}/parameters.json", f"{base}/metrics.json",
                        f"{base}/calibrated.osim"]
    return targets


# ---- input functions for rules/preprocess.smk ----
def get_emg_maxima_envelopes(wildcards):
    """Envelopes of the subject's MVC trials, or of its dynamic trials when it has none."""
    rows = STUDY.trials_of(wildcards.subject, kind="mvc") or STUDY.trials_of(
        wildcards.subject, kind="dynamic"
    )
    return [
        str(Path("results", wildcards.subject, "trials", row["trial"], "emg_envelope.sto"))
        for row in rows
    ]


# ---- input functions for rules/opensim.smk ----
def get_static_trc(wildcards):
    """Markers of the subject's static trial (the first row with kind static)."""
    row = STUDY.static_trial(wildcards.subject)
    return str(Path("results", wildcards.subject, "trials", row["trial"], "markers.trc"))


def get_id_loads(wildcards):
    """GRF and external loads, for models whose dynamic trials have force plates."""
    if not STUDY.model_setup(wildcards.subject).get("force_plates"):
        return {}
    base = Path("results", wildcards.subject, "trials", wildcards.trial)
    return {"external_loads": str(base / "external_loads.xml"), "grf": str(base / "grf.mot")}


def get_id_load_args(wildcards, input):
    if "external_loads" not in input.keys():
        return ""
    return f'--external-loads "{input.external_loads}" --grf "{input.grf}"'


# ---- input functions for rules/calibrate.smk ----
def get_calibration_inputs(wildcards):
    """Scaled model and the NMS input file of each calibration trial of the subject."""
    return {
        "model": f"results/{wildcards.subject}/model/scaled.osim",
        "trials": [
            f"results/{wildcards.subject}/trials/{trial}/nms_inputs.npz"
            for trial in calibration_trials(wildcards.subject)
        ],
    }


def get_validation_inputs(wildcards):
    """Calibrated parameters and the NMS input file of each validation trial (may be none)."""
    return {
        "parameters": (
            f"results/{wildcards.subject}/calibration/{wildcards.method}/parameters.json"
        ),
        "trials": [
            f"results/{wildcards.subject}/trials/{trial}/nms_inputs.npz"
            for trial in validation_trials(wildcards.subject)
        ],
    }


# ---- input functions for rules/synergies.smk ----
def get_synergy_inputs(wildcards):
    """Scaled model and the NMS input files of the calibration and validation trials."""
    trials = f"results/{wildcards.subject}/trials"
    return {
        "model": f"results/{wildcards.subject}/model/scaled.osim",
        "trials": [
            f"{trials}/{trial}/nms_inputs.npz" for trial in calibration_trials(wildcards.subject)
        ],
        "validation": [
            f"{trials}/{trial}/nms_inputs.npz" for trial in validation_trials(wildcards.subject)
        ],
    }
