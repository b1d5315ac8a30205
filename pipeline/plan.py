"""Which stages each trial needs, from the files the study gives (DESIGN.md, "Entering from
OpenSim files").

A trial may give OpenSim files instead of, or beside, its C3D (``trials.tsv`` columns
``markers_file``, ``grf_file`` + ``external_loads_file``, ``ik_file``, ``id_file``,
``emg_file``) and a subject may give its scaled model (``subjects.tsv`` column ``scaled_model``).
:func:`trial_plan` says where each of a trial's files comes from; the workflow runs a stage only
for files that are neither given nor unneeded, and copies (after checking) the given ones to the
contract paths. :func:`source_problems` lists what a study lacks, row by row.

Pure: no Snakemake here. ``rules/common.smk`` turns the plans into per-rule wildcard constraints
with :func:`pair_constraint`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRIAL_FILE_COLUMNS = ("markers_file", "grf_file", "external_loads_file", "ik_file", "id_file",
                      "emg_file")
SUBJECT_FILE_COLUMNS = ("scaled_model",)
SUFFIXES = {"markers_file": (".trc",), "grf_file": (".mot", ".sto"),
            "external_loads_file": (".xml",), "ik_file": (".mot", ".sto"),
            "id_file": (".sto", ".mot"), "emg_file": (".sto", ".mot"),
            "scaled_model": (".osim",)}
#: Sources of a file: given by the study, computed from the C3D (or from given raw EMG), or
#: computed by an OpenSim stage.
GIVEN, C3D, RAW, COMPUTED = "given", "c3d", "raw", "computed"


@dataclass(frozen=True)
class TrialPlan:
    """Where each of one trial's files comes from (None: not available)."""

    subject: str
    trial: str
    c3d: bool
    markers: str | None
    grf: str | None
    ik: str | None
    id: str | None
    emg: str | None

    @property
    def events(self) -> bool:
        """Cycles come from the C3D (events, force plates, markers); else from start_s/end_s."""
        return self.c3d


def given(row: Mapping[str, Any], column: str) -> str | None:
    """The file a sheet row gives in ``column`` (None when the cell is empty)."""
    value = row.get(column)
    return str(value) if value not in (None, "") else None


def trial_plan(row: Mapping[str, Any], *, force_plates: bool, emg_input: str) -> TrialPlan:
    """Sources of one ``trials.tsv`` row's files.

    ``force_plates``: ``models.<model>.force_plates``; ``emg_input``: ``emg.input``
    (``envelope``: ``emg_file`` holds MVC-normalised envelopes; ``raw``: raw EMG to process).
    """
    c3d = given(row, "file") is not None
    markers = GIVEN if given(row, "markers_file") else (C3D if c3d else None)
    if given(row, "grf_file"):
        grf: str | None = GIVEN
    else:
        grf = C3D if c3d and force_plates else None
    ik = GIVEN if given(row, "ik_file") else (COMPUTED if markers else None)
    loads_ready = grf is not None or not force_plates
    id_ = GIVEN if given(row, "id_file") else (COMPUTED if ik and loads_ready else None)
    if given(row, "emg_file"):
        emg: str | None = GIVEN if emg_input == "envelope" else RAW
    else:
        emg = C3D if c3d else None
    return TrialPlan(str(row["subject"]), str(row["trial"]), c3d, markers, grf, ik, id_, emg)


def study_plans(study: Any) -> list[TrialPlan]:
    """Plans of every trial of a :class:`pipeline.study.Study`."""
    emg_input = study.config["emg"].get("input", "envelope")
    return [trial_plan(row, force_plates=bool(study.model_setup(row["subject"])["force_plates"]),
                       emg_input=emg_input) for row in study.trials]


def pair_constraint(pairs: Iterable[tuple[str, str]]) -> str:
    """A ``subject`` wildcard regex that matches only the given (subject, trial) pairs.

    For paths ``.../{subject}/trials/{trial}/...``: each subject carries a look-ahead on the
    trial that follows it, so two rules writing the same path never both match one trial.
    Matches nothing when ``pairs`` is empty.
    """
    by_subject: dict[str, list[str]] = {}
    for subject, trial in pairs:
        by_subject.setdefault(subject, []).append(trial)
    if not by_subject:
        return "(?!)"
    parts = [f"{re.escape(s)}(?=/trials/(?:{'|'.join(re.escape(t) for t in sorted(ts))})/)"
             for s, ts in sorted(by_subject.items())]
    return "(?:" + "|".join(parts) + ")"


def names_constraint(names: Iterable[str]) -> str:
    """A wildcard regex matching exactly ``names`` (nothing when empty)."""
    names = sorted(set(names))
    return "(?:" + "|".join(re.escape(n) for n in names) + ")" if names else "(?!)"


def rule_constraints(study: Any) -> dict[str, str]:
    """``subject`` constraints of every rule that writes a trial file one of two ways."""
    plans = study_plans(study)

    def pairs(attr: str, *sources: str) -> str:
        return pair_constraint((p.subject, p.trial) for p in plans
                               if getattr(p, attr) in sources)

    return {
        "markers": pairs("markers", C3D), "import_markers": pairs("markers", GIVEN),
        "forceplates": pairs("grf", C3D), "import_grf": pairs("grf", GIVEN),
        "emg_envelope": pairs("emg", C3D, RAW), "emg_normalise": pairs("emg", C3D, RAW),
        "import_emg": pairs("emg", GIVEN),
        "events": pair_constraint((p.subject, p.trial) for p in plans if p.events),
        "ik": pairs("ik", COMPUTED), "import_ik": pairs("ik", GIVEN),
        "inverse_dynamics": pairs("id", COMPUTED), "import_id": pairs("id", GIVEN),
        "scale": names_constraint(s for s in study.subject_names
                                  if not given(study.subject(s), "scaled_model")),
        "import_model": names_constraint(s for s in study.subject_names
                                         if given(study.subject(s), "scaled_model")),
    }


def source_problems(root: Path, subjects: Iterable[Mapping[str, Any]],
                    trials: Iterable[Mapping[str, Any]], *, setups: Mapping[str, Mapping],
                    emg_input: str, check_files: bool = True) -> list[str]:
    """What the sheets lack or get wrong about given files, one message per problem.

    ``subjects``/``trials`` are sheet rows with ``_row`` (the editor's line number);
    ``setups``: subject -> its merged ``models.<model>`` settings.
    """
    problems: list[str] = []
    scaled: dict[str, bool] = {}
    for row in subjects:
        where = f"subjects.tsv row {row['_row']}"
        scaled[row["subject"]] = bool(given(row, "scaled_model"))
        problems += _file_problems(root, row, SUBJECT_FILE_COLUMNS, where, check_files)
    trials = list(trials)
    for row in trials:
        where = f"trials.tsv row {row['_row']}"
        problems += _file_problems(root, row, ("file", *TRIAL_FILE_COLUMNS), where, check_files)
        if bool(given(row, "grf_file")) != bool(given(row, "external_loads_file")):
            problems.append(f"{where}: grf_file and external_loads_file go together. Fix: give "
                            "both (the ExternalLoads .xml names the GRF columns) or neither")
        setup = setups.get(row["subject"])
        if setup is None:
            continue
        plan = trial_plan(row, force_plates=bool(setup.get("force_plates")),
                          emg_input=emg_input)
        problems += _missing_sources(row, plan, where, bool(setup.get("force_plates")))
    for subject, has_model in scaled.items():
        kinds = {r["kind"] for r in trials if r["subject"] == subject}
        if not has_model and "static" not in kinds:
            problems.append(f"trials.tsv: subject {subject!r} has no static trial. Fix: add a "
                            "row with kind static (it is needed for scaling), or give the "
                            "subject's scaled model in the scaled_model column of subjects.tsv")
    return problems


def _file_problems(root: Path, row: Mapping[str, Any], columns: Iterable[str], where: str,
                   check_files: bool) -> list[str]:
    problems = []
    for column in columns:
        value = given(row, column)
        if value is None:
            continue
        if column in SUFFIXES and Path(value).suffix.lower() not in SUFFIXES[column]:
            problems.append(f"{where}: {column} {value} is not a "
                            f"{' or '.join(SUFFIXES[column])} file. Fix: give the OpenSim file "
                            f"this column expects ({' or '.join(SUFFIXES[column])})")
        elif check_files and not (root / value).is_file():
            problems.append(f"{where}: {column} {value} does not exist. Fix: correct the path "
                            "(relative to the study folder) or copy the file there")
    return problems


def _missing_sources(row: Mapping[str, Any], plan: TrialPlan, where: str,
                     force_plates: bool) -> list[str]:
    kind, role = row.get("kind"), row.get("role")
    needs: list[tuple[str, str]] = []
    if kind == "static" and plan.markers is None:
        needs.append(("markers", "a C3D file (file) or markers_file (.trc)"))
    if kind == "mvc" and plan.emg is None:
        needs.append(("EMG", "a C3D file (file) or emg_file (.sto)"))
    if kind == "dynamic" and role in ("calibration", "validation", "split"):
        if plan.emg is None:
            needs.append(("EMG", "a C3D file (file) or emg_file (.sto)"))
        if plan.ik is None:
            needs.append(("kinematics", "a C3D file (file), markers_file (.trc) or ik_file"))
        if plan.id is None:
            loads = ("; the model has force plates, so ID also needs grf_file + "
                     "external_loads_file or a C3D file" if force_plates else "")
            needs.append(("joint moments", f"id_file (.sto), or kinematics to run ID{loads}"))
    return [f"{where}: trial {plan.trial!r} has no source of {what}. Fix: give {fix}"
            for what, fix in needs]
