# The one place for Python in the workflow: load and validate the study with the package's own
# validator, derive wildcard constraints from the sheets, and define the get_* input functions.
# Every results path comes from pipeline.layout (the package reads results through it too).
#
# Reruns: every rule passes rule_reads(<rule>) as a params value, the hash of exactly the config
# keys and sheet cells its CLI step reads (pipeline/rule_params.py), and takes every file it
# reads as an input, with study-relative paths. Snakemake's params/input/mtime rerun triggers
# then rerun a job when, and only when, something it reads changed.
import sys
from pathlib import Path

from pipeline import layout, plan
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
# Where each trial's files come from (given OpenSim files, C3D, or a stage): each rule that
# writes a trial file one of two ways is constrained to its (subject, trial) pairs.
PLANS = {(p.subject, p.trial): p for p in plan.study_plans(STUDY)}
ONLY = plan.rule_constraints(STUDY)


wildcard_constraints:
    subject="|".join(STUDY.subject_names),
    trial="|".join(sorted({row["trial"] for row in STUDY.trials})),
    method="gradient|annealing|synergy_hybrid|motion",


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


def given_file(column):
    """Input function: the file a trials.tsv row gives in ``column`` (see rules/given.smk)."""

    def get(wildcards):
        row = STUDY.trial(wildcards.subject, wildcards.trial)
        return study_relative(STUDY.root, row[column])

    return get


def get_scaled_model_source(wildcards):
    return study_relative(STUDY.root, STUDY.subject(wildcards.subject)["scaled_model"])


def get_emg_source(wildcards):
    """The trial's C3D, or its raw EMG .sto (emg.input: raw)."""
    if PLANS[(wildcards.subject, wildcards.trial)].emg == plan.RAW:
        return {"emg_sto": given_file("emg_file")(wildcards)}
    return {"c3d": get_c3d(wildcards)}


def get_emg_source_arg(wildcards, input):
    return f'--emg-sto "{input.emg_sto}"' if "emg_sto" in input.keys() else ""


def get_emg_time_base(wildcards):
    """Markers give the EMG's time base; the IK coordinates when the kinematics are given."""
    name = "ik.mot" if PLANS[(wildcards.subject, wildcards.trial)].ik == plan.GIVEN else "markers.trc"
    key = "time_base" if name == "ik.mot" else "trc"
    return {key: layout.trial_file(wildcards.subject, wildcards.trial, name)}


def get_emg_time_base_arg(wildcards, input):
    if "time_base" in input.keys():
        return f'--time-base "{input.time_base}"'
    return f'--markers-trc "{input.trc}"'


def get_events(wildcards):
    """events.json when the trial has a C3D; else its window comes from start_s/end_s."""
    if PLANS[(wildcards.subject, wildcards.trial)].events:
        return {"events": layout.trial_file(wildcards.subject, wildcards.trial, "events.json")}
    return {}


def get_events_arg(wildcards, input):
    return f'--events "{input.events}"' if "events" in input.keys() else ""


def get_static_c3d(wildcards):
    return study_relative(STUDY.root, STUDY.static_trial(wildcards.subject)["file"])


def get_scale_files(wildcards):
    """The subject's own .osim and the study's marker and measurement set files."""
    return scale_file_inputs(STUDY, wildcards.subject)


def all_outputs():
    """Every output of the DESIGN.md contract for every subject and calibration method."""
    targets = [layout.REPORT]
    for subject in STUDY.subject_names:
        targets.append(layout.scaled_model(subject))
        for method in METHODS:
            targets += [layout.method_file(subject, method, name)
                        for name in ("parameters.json", "metrics.json", "calibrated.osim")]
    return targets


# ---- input functions for rules/preprocess.smk ----
def get_emg_maxima_envelopes(wildcards):
    """Envelopes of the subject's MVC trials, or of its dynamic trials when it has none."""
    rows = STUDY.trials_of(wildcards.subject, kind="mvc") or STUDY.trials_of(
        wildcards.subject, kind="dynamic"
    )
    return [
        layout.trial_file(wildcards.subject, row["trial"], "emg_envelope.sto")
        for row in rows
        if PLANS[(wildcards.subject, row["trial"])].emg in (plan.C3D, plan.RAW)
    ]


# ---- input functions for rules/opensim.smk ----
def get_static_trc(wildcards):
    """Markers of the subject's static trial (the first row with kind static)."""
    row = STUDY.static_trial(wildcards.subject)
    return layout.trial_file(wildcards.subject, row["trial"], "markers.trc")


def get_id_loads(wildcards):
    """GRF and external loads, for models whose dynamic trials have force plates."""
    if PLANS[(wildcards.subject, wildcards.trial)].grf is None:
        return {}
    return {
        name: layout.trial_file(wildcards.subject, wildcards.trial, f"{name}.{ext}")
        for name, ext in (("external_loads", "xml"), ("grf", "mot"))
    }


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
        "model": layout.scaled_model(wildcards.subject),
        "trials": [
            layout.nms_inputs(wildcards.subject, trial)
            for trial in calibration_trials(wildcards.subject)
        ],
    }
    initial = STUDY.subject(wildcards.subject).get("initial_parameters")
    if initial:
        inputs["initial_parameters"] = study_relative(STUDY.root, initial)
    return inputs


def get_initial_parameters_arg(wildcards, input):
    if "initial_parameters" not in input.keys():
        return ""
    return f'--initial-parameters "{input.initial_parameters}"'


def get_motion_inputs(wildcards):
    """Method motion: the calibration inputs plus each calibration trial's IK motion and, for
    trials with force plates, its ExternalLoads and GRF."""
    inputs = get_calibration_inputs(wildcards)
    subject = wildcards.subject
    trials = calibration_trials(subject)
    inputs["ik"] = [layout.trial_file(subject, t, "ik.mot") for t in trials]
    loads = [t for t in trials if PLANS[(subject, t)].grf is not None]
    inputs["external_loads"] = [layout.trial_file(subject, t, "external_loads.xml") for t in loads]
    inputs["grf"] = [layout.trial_file(subject, t, "grf.mot") for t in loads]
    return inputs


def get_motion_load_args(wildcards):
    """--external-loads/--grf, one entry per calibration trial (none: no force plates)."""
    subject = wildcards.subject
    trials = calibration_trials(subject)
    if all(PLANS[(subject, t)].grf is None for t in trials):
        return ""
    xml, grf = [], []
    for t in trials:
        has = PLANS[(subject, t)].grf is not None
        xml.append(f'"{layout.trial_file(subject, t, "external_loads.xml")}"' if has else "none")
        grf.append(f'"{layout.trial_file(subject, t, "grf.mot")}"' if has else "none")
    return f"--external-loads {' '.join(xml)} --grf {' '.join(grf)}"


def get_validation_inputs(wildcards):
    """Calibrated parameters, the NMS input file of each validation trial (may be none) and of
    each calibration trial (executed for the figures)."""
    subject = wildcards.subject
    return {
        "parameters": layout.method_file(subject, wildcards.method, "parameters.json"),
        "trials": [layout.nms_inputs(subject, t) for t in validation_trials(subject)],
        "calibration_trials": [layout.nms_inputs(subject, t) for t in calibration_trials(subject)],
    }


# ---- input functions for rules/synergies.smk ----
def get_synergy_inputs(wildcards):
    """Scaled model and the NMS input files of the calibration and validation trials."""
    subject = wildcards.subject
    return {
        "model": layout.scaled_model(subject),
        "trials": [layout.nms_inputs(subject, t) for t in calibration_trials(subject)],
        "validation": [layout.nms_inputs(subject, t) for t in validation_trials(subject)],
    }


def get_synergy_calibration_inputs(wildcards):
    """get_synergy_inputs plus the study's truth.json when there is one: calibrate-synergy
    reads it (``<study>/truth.json``) for r of the synthesised vs true excitations."""
    files = get_synergy_inputs(wildcards)
    if (Path(STUDY.root) / "truth.json").is_file():
        files["truth"] = study_relative(STUDY.root, "truth.json")
    return files


# ---- input functions for rules/report.smk ----
def method_outputs(subject):
    """parameters.json, metrics.json and history.tsv of every calibration method."""
    return {
        f"{method}_{name.split('.')[0]}": layout.method_file(subject, method, name)
        for method in METHODS
        for name in layout.METHOD_FILES
    }


def get_figure_inputs(wildcards):
    """Calibration outputs per method (convergence, comparison) and every figure part of one
    subject."""
    subject = wildcards.subject
    files = method_outputs(subject)
    files["parts"] = [layout.figure_part_dir(subject, part) for part in ("data", *METHODS)]
    return files


def get_method_figure_inputs(wildcards):
    """One method's calibration outputs and the NMS inputs of one subject."""
    subject, method = wildcards.subject, wildcards.method
    modelled = [r["trial"] for r in STUDY.trials_of(subject, kind="dynamic")
                if r["role"] in ("calibration", "validation")]
    files = {name.split(".")[0]: layout.method_file(subject, method, name)
             for name in layout.METHOD_FILES}
    files["nms_inputs"] = [layout.nms_inputs(subject, t) for t in modelled]
    return files


def get_data_figure_inputs(wildcards):
    """The trial files one subject's movement-data figures read."""
    subject = wildcards.subject
    dynamic = [r["trial"] for r in STUDY.trials_of(subject, kind="dynamic")]
    files = {}
    # Trials that give their IK or GRF files (pipeline.plan) have no IK marker errors or no GRF.
    files["marker_errors"] = [layout.trial_file(subject, t, "_ik_marker_errors.sto")
                              for t in dynamic if PLANS[(subject, t)].ik == plan.COMPUTED]
    grf = [layout.trial_file(subject, t, "grf.mot") for t in dynamic
           if PLANS[(subject, t)].grf is not None]
    if grf:
        files["grf"] = grf
    # The per-cycle figures (joint angles, moments per kg, GRF in BW, EMG with quality flags),
    # from the files each trial has.
    has = {"ik.mot": lambda p: p.ik is not None, "id.sto": lambda p: p.id is not None,
           "events.json": lambda p: p.events, "emg.sto": lambda p: p.emg is not None,
           "emg_quality.json": lambda p: p.emg in (plan.C3D, plan.RAW)}
    for name, present in has.items():
        files[name] = [layout.trial_file(subject, t, name) for t in dynamic
                       if present(PLANS[(subject, t)])]
    return files


def get_report_inputs(wildcards):
    """Every subject's figure folder and calibration outputs."""
    files = {"figures": [layout.figures_dir(s) for s in STUDY.subject_names]}
    for subject in STUDY.subject_names:
        for key, path in method_outputs(subject).items():
            files[f"{subject}_{key}"] = path
        # The scale table and the EMG warnings of each subject's section.
        if not plan.given(STUDY.subject(subject), "scaled_model"):
            files[f"{subject}_scale_report"] = (f"{layout.subject_dir(subject)}/model/"
                                                "scale_report.json")
        # MVC trials too: the report judges a low-SNR channel across all the subject's trials.
        files[f"{subject}_emg_quality"] = [
            layout.trial_file(subject, r["trial"], "emg_quality.json")
            for kind in ("mvc", "dynamic") for r in STUDY.trials_of(subject, kind=kind)
            if PLANS[(subject, r["trial"])].emg in (plan.C3D, plan.RAW)]
        # The cycles the EMG table places onsets and offsets in.
        files[f"{subject}_events"] = [
            layout.trial_file(subject, r["trial"], "events.json")
            for r in STUDY.trials_of(subject, kind="dynamic")
            if PLANS[(subject, r["trial"])].events]
    return files
