"""Reruns on the real Snakefile: a change reruns exactly the jobs that read it, and their
downstream jobs (and the default target), and nothing else; a copied or moved study plans nothing.

Works on a copy of the finished small demo study (tests/conftest.py) with dry runs only: each
case changes one value, asserts the dry run's job list (rule -> number of jobs) and restores the
study. Add a row to CASES when a rule starts reading a new setting (pipeline/rule_params.py).

The small demo study: subjects arm01 (demo-arm-dumbbell, no force plates) and leg01 (demo-leg,
force plates), each with a static, an mvc and three dynamic trials (two calibration, one
validation); methods gradient and synergy_hybrid.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from workflow_helpers import planned_jobs, run_snakemake

pytestmark = pytest.mark.slow

Change = Callable[[Path], None]


def tail(n_subjects: int) -> dict[str, int]:
    """Calibration, validation, figures of ``n_subjects`` subjects, the report and the default
    target."""
    return {"calibrate": n_subjects, "execute": n_subjects,
            "calibrate_synergy_hybrid": n_subjects, "method_figures": 2 * n_subjects,
            "figures": n_subjects, "report": 1, "default": 1}


def data(n_subjects: int) -> dict[str, int]:
    """The movement data's figures of ``n_subjects`` subjects (drawn from the trial files)."""
    return {"data_figures": n_subjects}


def opensim(n_trials: int) -> dict[str, int]:
    """IK onwards for ``n_trials`` dynamic trials."""
    return {"ik": n_trials, "inverse_dynamics": n_trials, "muscle_analysis": n_trials,
            "collect_nms_inputs": n_trials}


def set_config(dotted: str, value: object) -> Change:
    def change(study: Path) -> None:
        path = study / "config.yaml"
        config = yaml.safe_load(path.read_text()) or {}
        node = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value(node.get(leaf)) if callable(value) else value
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return change


def set_cell(sheet: str, key: tuple[str, ...], column: str, value: str) -> Change:
    """Set a cell of subjects.tsv (key: subject) or trials.tsv (key: subject, trial)."""
    def change(study: Path) -> None:
        path = study / sheet
        lines = path.read_text().splitlines()
        header_at = next(i for i, line in enumerate(lines) if not line.startswith("#"))
        header = lines[header_at].split("\t")
        for i in range(header_at + 1, len(lines)):
            cells = lines[i].split("\t") + [""] * len(header)
            if tuple(cells[:len(key)]) == key:
                cells[header.index(column)] = value
                lines[i] = "\t".join(cells[:len(header)])
                break
        else:
            raise AssertionError(f"no row {key} in {sheet}")
        path.write_text("\n".join(lines) + "\n")
    return change


def add_cycles_column(key: tuple[str, str], value: str) -> Change:
    """Add the optional cycles column to trials.tsv, empty but for the row ``key``."""
    def change(study: Path) -> None:
        path = study / "trials.tsv"
        lines = path.read_text().splitlines()
        header_at = next(i for i, line in enumerate(lines) if not line.startswith("#"))
        n = len(lines[header_at].split("\t"))
        lines[header_at] += "\tcycles"
        for i in range(header_at + 1, len(lines)):
            cells = (lines[i].split("\t") + [""] * n)[:n]
            cells.append(value if tuple(cells[:2]) == key else "")
            lines[i] = "\t".join(cells)
        path.write_text("\n".join(lines) + "\n")
    return change


def split_row(key: tuple[str, str], **cycles: str) -> Change:
    """Give the row ``key`` role split and set the config's ``cycles`` rule."""
    def change(study: Path) -> None:
        set_cell("trials.tsv", key, "role", "split")(study)
        for role, spec in cycles.items():
            set_config(f"cycles.{role}", spec)(study)
    return change


def edit_file(relative: str) -> Change:
    """Change a file's content (an XML comment; for a C3D, one marker sample moved by 1 mm).

    Touching is not enough: Snakemake does not rerun when a newer input has the same checksum.
    """
    def change(study: Path) -> None:
        path = study / relative
        if path.suffix == ".c3d":
            import ezc3d

            c3d = ezc3d.c3d(str(path))
            points = c3d["data"]["points"]
            points[0, 0, 0] += 1.0
            c3d["data"]["points"] = points
            c3d.write(str(path))
        else:
            path.write_text(path.read_text() + "\n<!-- edited -->\n")
        now = time.time() + 5
        os.utime(path, (now, now))
    return change


def edit_truth(study: Path) -> None:
    """A new key in truth.json (still valid JSON), which calibrate-synergy reads when present."""
    path = study / "truth.json"
    truth = json.loads(path.read_text())
    truth["edited"] = True
    path.write_text(json.dumps(truth))
    now = time.time() + 5
    os.utime(path, (now, now))


def point_trial_at_copy(study: Path) -> None:
    shutil.copy2(study / "c3d/arm01/abduction1.c3d", study / "c3d/arm01/abduction1_copy.c3d")
    set_cell("trials.tsv", ("arm01", "abduction1"), "file",
             "c3d/arm01/abduction1_copy.c3d")(study)


def swap_first_two_emg_names(setup: dict) -> dict:
    labels = list(setup)
    swapped = dict(setup)
    swapped[labels[0]], swapped[labels[1]] = setup[labels[1]], setup[labels[0]]
    return swapped


def first_mtu_without_emg(excitations: dict) -> dict:
    first = next(iter(excitations))
    return {**excitations, first: {}}


MARKERS = {"markers": 8, "scale": 2, "emg_normalise": 6, **opensim(6), **data(2), **tail(2)}
PLATES = {"forceplates": 3, "events": 3, "inverse_dynamics": 3, "collect_nms_inputs": 3,
          **data(1), **tail(1)}
EMG = {"emg_envelope": 8, "emg_maxima": 2, "emg_normalise": 6, "collect_nms_inputs": 6,
       **data(2), **tail(2)}
EVENTS = {"events": 6, "collect_nms_inputs": 6, **data(2), **tail(2)}
SCALE_ARM = {"scale": 1, **opensim(3), **data(1), **tail(1)}
TRIAL_C3D = {"markers": 1, "emg_envelope": 1, "events": 1, "emg_normalise": 1, **opensim(1),
             **data(1), **tail(1)}

# (id, change, expected jobs)
CASES: list[tuple[str, Change, dict[str, int]]] = [
    *[(f"markers.{key}", set_config(f"markers.{key}", value), MARKERS)
      for key, value in [("cutoff_hz", 5.0), ("filter_order", 2),
                         ("correct_double_pass", False), ("max_gap_s", 0.2),
                         ("long_gap", "warn")]],
    ("lab_frame", set_config("lab_frame", {"x": "-x", "y": "+z", "z": "+y"}),
     {**MARKERS, "forceplates": 3}),
    *[(f"force_plates.{key}", set_config(f"force_plates.{key}", value), PLATES)
      for key, value in [("cutoff_hz", 5.0), ("threshold_n", 30.0), ("filter_order", 2),
                         ("correct_double_pass", False)]],
    # The plates' feet give the ground reactions and the side of each events.json window.
    ("force_plates.foot_markers", set_config("force_plates.foot_markers.left", ["LHEE"]),
     {"forceplates": 3, "events": 3, "inverse_dynamics": 3, "collect_nms_inputs": 3,
      **data(1), **tail(1)}),
    ("force_plates.assignment", set_config("force_plates.assignment",
                                           {"leg01/squat1": {"1": "right"}}),
     {"forceplates": 1, "events": 1, "inverse_dynamics": 1, "collect_nms_inputs": 1,
      **data(1), **tail(1)}),
    ("opensim.id.cutoff_hz", set_config("opensim.id.cutoff_hz", 5.0),
     {"inverse_dynamics": 6, "collect_nms_inputs": 6, **data(2), **tail(2)}),
    *[(f"emg.{key}", set_config(f"emg.{key}", value), EMG)
      for key, value in [("bandpass_hz", [25.0, 400.0]), ("bandpass_order", 2),
                         ("lowpass_hz", 4.0), ("lowpass_order", 2), ("remove_offset", False),
                         ("correct_double_pass", True)]],
    ("events.source", set_config("events.source", "kinematics"), EVENTS),
    ("events.min_cycle_s", set_config("events.min_cycle_s", 0.3), EVENTS),
    ("opensim.scale.max_marker_error_m", set_config("opensim.scale.max_marker_error_m", 0.05),
     {"scale": 2, **opensim(6), **data(2), **tail(2)}),
    ("opensim.ik.max_rms_error_m", set_config("opensim.ik.max_rms_error_m", 0.03),
     {**opensim(6), **data(2), **tail(2)}),
    ("opensim.ik.task_weights", set_config("opensim.ik.task_weights", {"dummy": 2.0}),
     {"scale": 2, **opensim(6), **data(2), **tail(2)}),
    ("models.emg_channels", set_config("models.demo-leg.emg_channels",
                                       swap_first_two_emg_names),
     {"emg_envelope": 4, "emg_maxima": 1, "emg_normalise": 3, "collect_nms_inputs": 3,
      **data(1), **tail(1)}),
    ("models.excitations", set_config("models.demo-leg.excitations", first_mtu_without_emg),
     {"collect_nms_inputs": 3, **tail(1)}),
    ("models.dofs", set_config("models.demo-leg.dofs", ["hip_flexion_r", "knee_angle_r"]),
     {"muscle_analysis": 3, "collect_nms_inputs": 3, **data(1), **tail(1)}),
    ("models.unrecorded", set_config("models.demo-leg.unrecorded", ["gracilis_r"]),
     {"calibrate_synergy_hybrid": 1, "method_figures": 1, "figures": 1, "report": 1,
      "default": 1}),
    # the synergy hybrid's iteration counts are synergies.*; it never runs least squares
    ("calibration.optimiser.max_iterations",
     set_config("calibration.optimiser.max_iterations", 123),
     {"calibrate": 2, "execute": 2, "method_figures": 2, "figures": 2, "report": 1,
      "default": 1}),
    ("calibration.optimiser.max_evaluations",
     set_config("calibration.optimiser.max_evaluations", 150),
     {"calibrate": 2, "execute": 2, "method_figures": 2, "figures": 2, "report": 1,
      "default": 1}),
    ("calibration.optimiser.learning_rate",
     set_config("calibration.optimiser.learning_rate", 0.05), tail(2)),
    ("calibration.emd_s", set_config("calibration.emd_s", 0.02), tail(2)),
    ("models.strip_marker_prefix", set_config("models.demo-leg.strip_marker_prefix", True),
     {"markers": 4, "scale": 1, "emg_normalise": 3, **opensim(3), **data(1), **tail(1)}),
    ("models.foot_bodies", set_config("models.demo-leg.foot_bodies", {"right": "calcn_r",
                                                                      "left": "tibia_l"}),
     {"forceplates": 3, "inverse_dynamics": 3, "collect_nms_inputs": 3, **data(1),
      **tail(1)}),
    ("models.drop_emg", set_config("models.demo-leg.drop_emg", ["gracilis"]),
     {"emg_envelope": 4, "emg_maxima": 1, "emg_normalise": 3, "collect_nms_inputs": 3,
      **data(1), **tail(1)}),
    ("trials.cycles", add_cycles_column(("leg01", "squat1"), "1"),
     {"events": 1, "collect_nms_inputs": 1, **data(1), **tail(1)}),
    # cycles.side: every events job reads it; cycles.calibration/validation reach only the
    # trials a split row yields (through their cycles), so without one nothing reruns.
    ("cycles.side", set_config("cycles.side", "right"), EVENTS),
    ("cycles.calibration without split rows", set_config("cycles.calibration", "1"), {}),
    # the motion method's settings are read by calibrate_motion only (not selected here)
    ("calibration.motion without the method", set_config("calibration.motion.simulate", True),
     {}),
    ("models.known_bodies without the method",
     set_config("models.demo-arm-dumbbell.known_bodies", ["dumbbell", "hand"]), {}),
    ("trials.role split", split_row(("leg01", "squat1"), calibration="1", validation="2-"),
     {"markers": 2, "forceplates": 2, "emg_envelope": 2, "events": 2, "emg_normalise": 2,
      **opensim(2), **data(1), **tail(1)}),
    ("calibration.methods", set_config("calibration.methods", ["gradient"]),
     {"figures": 2, "report": 1, "default": 1}),
    ("synergies.restarts", set_config("synergies.restarts", 3),
     {"calibrate_synergy_hybrid": 2, "method_figures": 2, "figures": 2, "report": 1,
      "default": 1}),
    ("subjects.mass_kg", set_cell("subjects.tsv", ("arm01",), "mass_kg", "19.0"), SCALE_ARM),
    ("subjects.height_m", set_cell("subjects.tsv", ("arm01",), "height_m", "1.75"),
     SCALE_ARM),
    # The window bounds IK, so ID, muscle analysis and the NMS inputs follow.
    ("trials.start_s", set_cell("trials.tsv", ("arm01", "abduction1"), "start_s", "0.2"),
     {"events": 1, **opensim(1), **data(1), **tail(1)}),
    ("trials.end_s of a validation trial", set_cell("trials.tsv", ("leg01", "squat3"),
                                                    "end_s", "2.0"),
     {"events": 1, **opensim(1), **data(1), "execute": 1, "calibrate_synergy_hybrid": 1,
      "method_figures": 2, "figures": 1, "report": 1, "default": 1}),
    ("trials.start_s of the static trial", set_cell("trials.tsv", ("arm01", "static"),
                                                    "start_s", "0.1"), SCALE_ARM),
    ("trials.role", set_cell("trials.tsv", ("arm01", "flexion2"), "role", "calibration"),
     {"collect_nms_inputs": 1, **data(1), **tail(1)}),
    # kind: the MVC trials (else the dynamic ones) give the EMG maxima.
    ("trials.kind mvc -> static", set_cell("trials.tsv", ("leg01", "mvc1"), "kind", "static"),
     {"emg_maxima": 1, "emg_normalise": 3, "collect_nms_inputs": 3, **data(1), **tail(1)}),
    ("truth.json", edit_truth,
     {"calibrate_synergy_hybrid": 2, "method_figures": 2, "figures": 2, "report": 1,
      "default": 1}),
    ("trials.file", point_trial_at_copy, TRIAL_C3D),
    ("c3d file content", edit_file("c3d/arm01/abduction1.c3d"), TRIAL_C3D),
    ("c3d file of the static trial", edit_file("c3d/arm01/static.c3d"),
     {"markers": 1, **SCALE_ARM}),
]


@pytest.fixture(scope="module")
def study(small_demo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the finished small demo study (file times kept, as ``cp -a`` does)."""
    copy = tmp_path_factory.mktemp("rerun_matrix") / "study"
    shutil.copytree(small_demo_run, copy, symlinks=True)
    return copy


def _dry_run(study: Path) -> dict[str, int]:
    return planned_jobs(run_snakemake(study, "-n"))


def _snapshot(study: Path) -> tuple[dict[Path, bytes], dict[Path, float], set[Path]]:
    names = ("config.yaml", "subjects.tsv", "trials.tsv")
    inputs = [study / "truth.json", *(study / "c3d").rglob("*.c3d")]  # their times matter
    texts = {p: p.read_bytes() for p in [*(study / n for n in names), *inputs]}
    times = {p: p.stat().st_mtime for p in inputs}
    return texts, times, set((study / "c3d").rglob("*"))


def _restore(study: Path, snapshot: tuple[dict[Path, bytes], dict[Path, float],
                                          set[Path]]) -> None:
    texts, times, files = snapshot
    for path, data in texts.items():
        path.write_bytes(data)
    for path, mtime in times.items():
        os.utime(path, (mtime, mtime))
    for path in set((study / "c3d").rglob("*")) - files:
        path.unlink()


def test_copied_and_moved_study_plans_nothing(study: Path) -> None:
    assert _dry_run(study) == {}
    moved = study.parent / "moved"
    study.rename(moved)
    try:
        assert _dry_run(moved) == {}
    finally:
        moved.rename(study)


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_change_reruns_exactly_its_readers(study: Path, change: Change,
                                           expected: dict[str, int]) -> None:
    snapshot = _snapshot(study)
    try:
        change(study)
        planned = _dry_run(study)
    finally:
        _restore(study, snapshot)
    assert planned == expected


def _marker_set_file(model: Path, target: Path) -> None:
    """The model's own markers as an OpenSim MarkerSet file."""
    import xml.etree.ElementTree as ET

    marker_set = ET.parse(model).getroot().find(".//MarkerSet")
    assert marker_set is not None
    document = ET.Element("OpenSimDocument", Version="40000")
    document.append(marker_set)
    ET.ElementTree(document).write(target, encoding="utf-8", xml_declaration=True)


def test_user_model_and_marker_set_files_rerun_scale(
        study: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The subject's own .osim and the marker-set file are inputs of its scale job."""
    copy = tmp_path_factory.mktemp("user_files") / "study"
    shutil.copytree(study, copy, symlinks=True)
    generic = copy / "results/generic_models/demo-arm-dumbbell.osim"
    (copy / "models").mkdir()
    shutil.copy(generic, copy / "models/arm.osim")
    _marker_set_file(generic, copy / "markers.xml")
    set_cell("subjects.tsv", ("arm01",), "model", "models/arm.osim")(copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["models"]["models/arm.osim"] = config["models"].pop("demo-arm-dumbbell")
    config.setdefault("opensim", {}).setdefault("scale", {})["marker_set"] = "markers.xml"
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(copy, "--touch")  # record the new settings as if the jobs had run
    assert _dry_run(copy) == {}
    edit_file("markers.xml")(copy)
    assert _dry_run(copy) == {"scale": 2, **opensim(6), **data(2), **tail(2)}
    # edit_file dates the file 5 s ahead; --touch refuses outputs older than their inputs, so
    # date it now (still newer than the outputs) before the touch records the edit.
    os.utime(copy / "markers.xml")
    run_snakemake(copy, "--touch")
    edit_file("models/arm.osim")(copy)
    assert _dry_run(copy) == SCALE_ARM
