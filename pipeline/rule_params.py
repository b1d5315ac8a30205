"""What each workflow step reads, so Snakemake reruns exactly what a change affects.

Every rule of the workflow passes ``params: reads=...`` the hash of :func:`step_reads` for its
job (Snakemake's ``params`` rerun trigger then reruns the job when, and only when, one of the
values it reads changes) and takes every file its CLI step reads as an ``input`` (rerun trigger
``mtime``/``input``). Upstream changes reach a rule through its inputs.

:data:`STEP_READS` lists, per step, the values its CLI subcommand reads, one source a line:

- ``config.<dotted.key>``: a key of the merged config (a missing key reads as ``null``);
  ``config.<section>!<key>,<key>``: the section without the keys named after ``!`` (e.g. the
  calibration settings without ``methods``, which picks the jobs rather than their content); an
  excluded key may be dotted (``optimiser.tolerance``: that key of the subsection);
- ``setup.<key>``: a key of the subject's model setup (``models.<model>`` merged onto the
  defaults, :meth:`pipeline.study.Study.model_setup`);
- ``subject.<column>``: a cell of the subject's row in subjects.tsv;
- ``trial.<column>``: a cell of the trial's row in trials.tsv;
- ``roles``: the role (trials.tsv) of each of the subject's dynamic trials;
- ``static.<column>``: a cell of the subject's static trial row;
- ``plates.<key>``: ``force_plates.<key>`` when the subject's model uses force plates (else
  nothing is read);
- ``mtus``: the MTU names listed under the model's ``excitations`` (not their EMG weights);
- ``assignment``: the trial's entry of ``force_plates.assignment``.

Add a line when a step starts reading a new setting; tests/workflow/test_rerun_matrix.py checks
the promise on the real Snakefile. :func:`study_inputs` gives the files inside or beside the
study that a step reads (C3D, the subject's own ``.osim``, marker and measurement sets) as paths
relative to the study folder, so a copied or moved study stays up to date.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.provenance import lookup, sha256_of

STEP_READS: dict[str, tuple[str, ...]] = {
    "markers": ("config.lab_frame", "config.markers", "setup.marker_names",
                "setup.strip_marker_prefix"),
    "forceplates": (
        "config.lab_frame",
        "config.force_plates.threshold_n",
        "config.force_plates.cutoff_hz",
        "config.force_plates.filter_order",
        "config.force_plates.correct_double_pass",
        "config.force_plates.foot_markers",
        "assignment",
        "setup.foot_bodies",
    ),
    "emg_envelope": ("config.emg", "setup.emg_channels", "setup.drop_emg"),
    "emg_maxima": (),
    "emg_normalise": (),
    "events": (
        "config.events",
        "config.cycles.side",
        "plates.threshold_n",
        "plates.cutoff_hz",
        "plates.filter_order",
        "plates.correct_double_pass",
        "plates.foot_markers",  # the foot of each plate contact: the windows' sides
        "assignment",
        "setup.force_plates",
        "trial.start_s",
        "trial.end_s",
        "trial.cycles",
    ),
    "scale": (
        "config.opensim.scale",
        "config.opensim.ik.task_weights",
        "setup.marker_set",
        "setup.measurement_set",
        "setup.add_markers",
        "setup.scaling",
        "subject.model",
        "subject.mass_kg",
        "subject.height_m",
        "static.start_s",
        "static.end_s",
    ),
    "ik": ("config.opensim.ik", "subject.model", "trial.start_s", "trial.end_s"),
    "inverse_dynamics": ("config.opensim.id",),
    "muscle_analysis": ("mtus", "setup.dofs", "subject.model", "trial.start_s", "trial.end_s"),
    "collect_nms_inputs": (
        "setup.excitations",
        "setup.drop_emg",
        "setup.dofs",
        "subject.model",
        "trial.start_s",
        "trial.end_s",
        "trial.role",
    ),
    "calibrate": ("config.calibration!methods,motion", "setup.tracked_dofs",
                  "setup.calibrated_mtus"),
    "calibrate_motion": ("config.calibration!methods", "config.opensim.id", "setup.tracked_dofs",
                         "setup.calibrated_mtus", "setup.known_bodies", "subject.mass_kg"),
    # Given OpenSim files (pipeline/workflow/rules/given.smk): the names they are checked for.
    "import_model": ("mtus", "setup.dofs"),
    "import_markers": (),
    "import_grf": (),
    "import_ik": ("setup.dofs",),
    "import_id": ("setup.dofs",),
    "import_emg": ("setup.excitations", "setup.emg_channels", "setup.drop_emg"),
    "execute": (),
    # The synergy hybrid takes its iteration counts from synergies.*, and neither it nor channel
    # removal runs the least-squares method (its method, evaluations and tolerance).
    "calibrate_synergy_hybrid": (
        "config.calibration!methods,motion,optimiser.method,optimiser.max_evaluations,"
        "optimiser.tolerance,optimiser.max_iterations,optimiser.polish_iterations",
        "config.synergies", "setup.unrecorded"),
    "channel_removal": ("config.calibration!methods,motion,optimiser.method,"
                        "optimiser.max_evaluations,optimiser.tolerance", "config.synergies",
                        "setup.unrecorded"),
    # A subject's figures in parts: the movement data's (calibration trials solid, validation
    # dashed), each method's, and the convergence and comparison of all methods.
    "data_figures": ("config.opensim.ik", "subject.mass_kg", "setup.dofs", "setup.force_plates",
                     "roles"),
    "method_figures": ("config.calibration.penalties", "roles"),
    "figures": ("config.calibration.methods",),
    "report": ("config.calibration.methods",),
}


def step_reads(study: Any, step: str, subject: str | None = None,
               trial: str | None = None) -> dict[str, Any]:
    """The values ``step`` reads for one job, keyed by their source (see :data:`STEP_READS`)."""
    values: dict[str, Any] = {}
    for source in STEP_READS[step]:
        kind, _, key = source.partition(".")
        if kind == "config":
            key, _, excluded = key.partition("!")
            value = lookup(study.config, key)
            for dotted in filter(None, excluded.split(",")):
                value = _without(value, dotted.split("."))
            values[source] = value
        elif kind == "setup":
            values[source] = study.model_setup(subject).get(key)
        elif kind == "subject":
            values[source] = study.subject(subject).get(key)
        elif kind == "trial":
            values[source] = study.trial(subject, trial).get(key)
        elif kind == "static":
            statics = study.trials_of(subject, kind="static")
            values[source] = statics[0].get(key) if statics else None
        elif kind == "plates":
            uses_plates = study.model_setup(subject).get("force_plates")
            values[source] = lookup(study.config, f"force_plates.{key}") if uses_plates else None
        elif kind == "mtus":
            values[source] = list(study.model_setup(subject).get("excitations") or {})
        elif kind == "roles":
            values[source] = {r["trial"]: r["role"]
                              for r in study.trials_of(subject, kind="dynamic")}
        elif kind == "assignment":
            values[source] = study.plate_assignment(subject, trial)
        else:
            raise ValueError(f"STEP_READS[{step!r}]: unknown source {source!r}")
    return values


def _without(value: Any, path: list[str]) -> Any:
    """``value`` without the key at ``path`` (nested dicts copied along it; anything else as
    it is)."""
    if not isinstance(value, dict) or path[0] not in value:
        return value
    head, rest = path[0], path[1:]
    kept = {k: v for k, v in value.items() if k != head}
    if rest:
        kept[head] = _without(value[head], rest)
    return kept


def step_hash(study: Any, step: str, subject: str | None = None,
              trial: str | None = None) -> str:
    """SHA-256 of :func:`step_reads`, the value a rule passes as ``params: reads``."""
    return sha256_of(step_reads(study, step, subject, trial))


def study_relative(study_root: Path, path: str | Path) -> str:
    """``path`` relative to the study folder when it lies inside it, else absolute (POSIX)."""
    path = Path(path)
    full = path if path.is_absolute() else study_root / path
    try:
        return full.resolve().relative_to(Path(study_root).resolve()).as_posix()
    except ValueError:
        return full.resolve().as_posix()


def scale_file_inputs(study: Any, subject: str) -> dict[str, str]:
    """Files the scale step reads from the study: the subject's own ``.osim`` and the marker
    and measurement sets named in the config, when they are the user's files (the built-in
    models and the package's templates are part of the code)."""
    files: dict[str, str] = {}
    model = str(study.subject(subject)["model"])
    if model.lower().endswith(".osim"):
        files["model"] = study_relative(study.root, model)
    setup = study.model_setup(subject)
    scale_cfg = study.config["opensim"]["scale"]
    for key in ("marker_set", "measurement_set"):
        value = setup.get(key) or scale_cfg.get(key)
        if not value:
            continue
        path = Path(value) if Path(value).is_absolute() else study.root / value
        if path.is_file():
            files[key] = study_relative(study.root, path)
    return files
