# The one place for Python in the workflow: load and validate the study with the package's own
# validator, derive wildcard constraints from the sheets, and define the get_* input functions.
import sys
from pathlib import Path

from pipeline import plan
from pipeline.provenance import config_section_hash
from pipeline.study import load_study

STUDY = load_study(".")
config.update(STUDY.config)
# The rules call the package with the interpreter that runs Snakemake (the project's venv).
PIPELINE = f'"{sys.executable}" -m pipeline'
METHODS = STUDY.config["calibration"]["methods"]
# Where each trial's files come from (given OpenSim files, C3D, or a stage): each rule that
# writes a trial file one of two ways is constrained to its (subject, trial) pairs.
PLANS = {(p.subject, p.trial): p for p in plan.study_plans(STUDY)}
ONLY = plan.rule_constraints(STUDY)


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


def get_c3d(wildcards):
    return str(STUDY.c3d_path(wildcards.subject, wildcards.trial))


def given_file(column):
    """Input function: the file a trials.tsv row gives in ``column`` (see rules/given.smk)."""

    def get(wildcards):
        row = STUDY.trial(wildcards.subject, wildcards.trial)
        return str(STUDY.root / row[column])

    return get


def get_scaled_model_source(wildcards):
    return str(STUDY.root / STUDY.subject(wildcards.subject)["scaled_model"])


def get_emg_source(wildcards):
    """The trial's C3D, or its raw EMG .sto (emg.input: raw)."""
    if PLANS[(wildcards.subject, wildcards.trial)].emg == plan.RAW:
        return {"emg_sto": given_file("emg_file")(wildcards)}
    return {"c3d": get_c3d(wildcards)}


def get_emg_source_arg(wildcards, input):
    return f'--emg-sto "{input.emg_sto}"' if "emg_sto" in input.keys() else ""


def get_emg_time_base(wildcards):
    """Markers give the EMG's time base; the IK coordinates when the kinematics are given."""
    base = trial_dir(wildcards.subject, wildcards.trial)
    if PLANS[(wildcards.subject, wildcards.trial)].ik == plan.GIVEN:
        return {"time_base": str(base / "ik.mot")}
    return {"trc": str(base / "markers.trc")}


def get_emg_time_base_arg(wildcards, input):
    if "time_base" in input.keys():
        return f'--time-base "{input.time_base}"'
    return f'--markers-trc "{input.trc}"'


def get_events(wildcards):
    """events.json when the trial has a C3D; else its window comes from start_s/end_s."""
    if PLANS[(wildcards.subject, wildcards.trial)].events:
        return {"events": str(trial_dir(wildcards.subject, wildcards.trial) / "events.json")}
    return {}


def get_events_arg(wildcards, input):
    return f'--events "{input.events}"' if "events" in input.keys() else ""


def get_static_c3d(wildcards):
    row = STUDY.static_trial(wildcards.subject)
    return str(STUDY.root / row["file"])


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
        if PLANS[(wildcards.subject, row["trial"])].emg in (plan.C3D, plan.RAW)
    ]


# ---- input functions for rules/opensim.smk ----
def get_static_trc(wildcards):
    """Markers of the subject's static trial (the first row with kind static)."""
    row = STUDY.static_trial(wildcards.subject)
    return str(Path("results", wildcards.subject, "trials", row["trial"], "markers.trc"))


def get_id_loads(wildcards):
    """GRF and external loads, for models whose dynamic trials have force plates."""
    if PLANS[(wildcards.subject, wildcards.trial)].grf is None:
        return {}
    base = Path("results", wildcards.subject, "trials", wildcards.trial)
    return {"external_loads": str(base / "external_loads.xml"), "grf": str(base / "grf.mot")}


def get_window_args(wildcards):
    """--start-s/--end-s of the trial's window (trials.tsv), so only those frames are analysed."""
    row = STUDY.trial(wildcards.subject, wildcards.trial)
    return " ".join(f"--{key.replace('_', '-')} {row[key]!r}" for key in ("start_s", "end_s")
                    if row.get(key) is not None)


def get_id_load_args(wildcards, input):
    if "external_loads" not in input.keys():
        return ""
    return f'--external-loads "{input.external_loads}" --grf "{input.grf}"'


# ---- input functions for rules/calibrate.smk ----
def get_calibration_inputs(wildcards):
    """Scaled model, the NMS input file of each calibration trial of the subject and its
    per-MTU initial values when subjects.tsv gives them (initial_parameters)."""
    inputs = {
        "model": f"results/{wildcards.subject}/model/scaled.osim",
        "trials": [
            f"results/{wildcards.subject}/trials/{trial}/nms_inputs.npz"
            for trial in calibration_trials(wildcards.subject)
        ],
    }
    initial = STUDY.subject(wildcards.subject).get("initial_parameters")
    if initial:
        inputs["initial_parameters"] = str(STUDY.root / initial)
    return inputs


def get_initial_parameters_arg(wildcards, input):
    if "initial_parameters" not in input.keys():
        return ""
    return f'--initial-parameters "{input.initial_parameters}"'


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
