"""Checks of a study against its data files, run before any job (validate-study, workflow load).

:func:`check_data` opens every C3D file of trials.tsv and every model, marker-set and
measurement-set file the config names, and returns one message per problem (file, row or key,
cause, fix): EMG labels missing from a C3D, cut-offs at or above the Nyquist frequency of the
data they filter, trial windows outside the recording or too short to calibrate, unreadable
files, DOFs and MTUs that the model lacks (with "did you mean"), and DOFs no calibrated MTU
crosses.
"""

from __future__ import annotations

import difflib
import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.study_checks import Sheet

log = logging.getLogger(__name__)

#: Fewest marker frames a calibration or validation window may have: the NMS model needs the
#: electromechanical delay, activation dynamics and a moment curve to fit (5 frames are not).
MIN_CALIBRATION_FRAMES = 20


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _files(where: list[str]) -> str:
    shown = ", ".join(where[:3])
    return shown + (f" and {len(where) - 3} more" if len(where) > 3 else "")


def _nyquist(config: dict[str, Any], setup: dict[str, Any], summary: Any, where: str,
             found: dict[tuple, list[str]]) -> None:
    """Record in ``found`` each cut-off at or above the Nyquist frequency of the data."""
    point, analog = summary.point_rate_hz, summary.analog_rate_hz
    checks = [("markers.cutoff_hz", config["markers"]["cutoff_hz"], point, "marker"),
              ("opensim.id.cutoff_hz", config["opensim"]["id"]["cutoff_hz"], point,
               "IK (marker-rate)")]
    if setup.get("force_plates"):
        checks.append(("force_plates.cutoff_hz", config["force_plates"]["cutoff_hz"], analog,
                       "analog"))
    if setup.get("emg_channels"):
        checks += [("emg.bandpass_hz", config["emg"]["bandpass_hz"][1], analog, "analog"),
                   ("emg.lowpass_hz", config["emg"]["lowpass_hz"], analog, "analog")]
    for key, cutoff, rate, kind in checks:
        if rate > 0 and float(cutoff) >= rate / 2:
            found.setdefault((key, float(cutoff), rate / 2, kind), []).append(where)


def _nyquist_messages(found: dict[tuple, list[str]]) -> list[str]:
    return [f"config.yaml key {key}: {cutoff:g} Hz is at or above the Nyquist frequency "
            f"({nyquist:g} Hz) of the {kind} data of {_files(where)}. Fix: lower the cut-off "
            f"below {nyquist:g} Hz" for (key, cutoff, nyquist, kind), where in found.items()]


def _window(row: dict[str, Any], summary: Any, where: str, file: str) -> list[str]:
    start, end = _number(row.get("start_s")), _number(row.get("end_s"))
    t0, t1 = summary.start_s, summary.end_s
    tol = 0.5 / summary.point_rate_hz if summary.point_rate_hz > 0 else 0.0
    problems = []
    for name, value in (("start_s", start), ("end_s", end)):
        if value is not None and not t0 - tol <= value <= t1 + tol:
            problems.append(f"{where}: {name} {value:g} s lies outside the recording of {file} "
                            f"({t0:g} to {t1:g} s). Fix: choose a window within the recording")
    if problems or row.get("role") not in ("calibration", "validation", "split"):
        return problems
    lo = t0 if start is None else start
    hi = t1 if end is None else end
    frames = int(round((hi - lo) * summary.point_rate_hz)) + 1 if summary.point_rate_hz else 0
    if frames < MIN_CALIBRATION_FRAMES:
        problems.append(f"{where}: the {row['role']} window of {file} has {frames} marker "
                        f"frame(s), fewer than the {MIN_CALIBRATION_FRAMES} needed to calibrate."
                        " Fix: widen start_s/end_s or set role none")
    return problems


def _natural(label: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", label))


def _emg_labels(setup: dict[str, Any], summary: Any, where: str, model: str,
                found: dict[tuple, list[str]]) -> None:
    """Record in ``found`` each mapped EMG label that the C3D file lacks."""
    labels = {label.strip() for label in summary.analog_labels}
    for label in setup.get("emg_channels") or {}:
        if label.strip() not in labels:
            key = (model, label, tuple(sorted(labels, key=_natural)))
            found.setdefault(key, []).append(where)


def _emg_messages(found: dict[tuple, list[str]]) -> list[str]:
    messages = []
    for (model, label, labels), where in found.items():
        shown = ", ".join(labels[:24]) + (" ..." if len(labels) > 24 else "") or "none"
        messages.append(f"config.yaml key models.{model}.emg_channels: channel {label!r} is not "
                        f"an analog label of {_files(where)}"
                        f"{_did_you_mean(label.strip(), list(labels))}; its analog labels are: "
                        f"{shown}. Fix: correct the label or re-export the trial with it")
    return messages


def _check_trials(root: Path, config: dict[str, Any], subjects: Sheet,
                  trials: Sheet) -> list[str]:
    from pipeline.io.c3d_header import cached_summary
    from pipeline.study import MODEL_SETUP_DEFAULTS, deep_merge

    model_of = {row["subject"]: row["model"] for row in subjects}
    problems: list[str] = []
    nyquist: dict[tuple, list[str]] = {}
    emg: dict[tuple, list[str]] = {}
    for row in trials:
        path = root / row["file"]
        if not row["file"] or not path.is_file():
            continue
        where = f"trials.tsv row {row['_row']}"
        try:
            summary = cached_summary(path)
        except PipelineError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if summary.n_frames == 0 or summary.point_rate_hz <= 0:
            problems.append(f"{where}: {row['file']} has no marker frames (or a zero rate). "
                            "Fix: re-export the trial with its markers")
            continue
        if row["kind"] in ("static", "dynamic") and not summary.has_marker_data:
            cause = ("has no markers" if not summary.marker_labels else
                     "has no marker data (every sample is NaN or exactly zero)")
            problems.append(f"{where}: {row['file']} {cause}, but a {row['kind']} trial needs "
                            "them. Fix: re-export the trial with its labelled trajectories")
        model = model_of.get(row["subject"], "")
        setup = deep_merge(MODEL_SETUP_DEFAULTS, config["models"].get(model, {}))
        _nyquist(config, setup, summary, f"{row['file']} (trials.tsv row {row['_row']})", nyquist)
        problems += _window(row, summary, where, row["file"])
        if row["kind"] in ("dynamic", "mvc") and setup.get("emg_channels"):
            _emg_labels(setup, summary, f"{row['file']} (trials.tsv row {row['_row']})", model, emg)
    return _nyquist_messages(nyquist) + _emg_messages(emg) + problems


def _xml_root(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def _osim_names(path: Path) -> tuple[list[str], list[str]]:
    """Coordinates and muscles (any element whose tag ends in Muscle) of an .osim file."""
    root = _xml_root(path)
    coordinates = [e.get("name", "") for e in root.iter("Coordinate")]
    muscles = [e.get("name", "") for e in root.iter() if e.tag.endswith("Muscle")]
    return coordinates, muscles


def _model_names(root: Path, model: str, where: str) -> tuple[list[str], list[str],
                                                              dict | None, list[str]]:
    from pipeline.osim import models

    if models.is_builtin(model):
        return (list(models.coordinate_names(model)), list(models.muscle_names(model)),
                models.moment_arm_signs(model), [])
    path = Path(model) if Path(model).is_absolute() else root / model
    if not path.is_file():
        return [], [], None, []  # reported by check_sheets
    try:
        coordinates, muscles = _osim_names(path)
    except (ET.ParseError, OSError) as exc:
        return [], [], None, [f"{where}: model file {model} cannot be parsed as XML ({exc}). "
                              "Fix: re-export the model from OpenSim"]
    if not coordinates:
        return [], [], None, [f"{where}: model file {model} has no coordinates (not an "
                              "OpenSim model?). Fix: point the model column at an .osim model"]
    return coordinates, muscles, None, []


def _check_models(root: Path, config: dict[str, Any], subjects: Sheet) -> list[str]:
    from pipeline.study import MODEL_SETUP_DEFAULTS, deep_merge

    problems: list[str] = []
    seen: set[str] = set()
    for row in subjects:
        model = row["model"]
        if not model or model in seen or model not in config["models"]:
            continue
        seen.add(model)
        setup = deep_merge(MODEL_SETUP_DEFAULTS, config["models"][model])
        where = f"subjects.tsv row {row['_row']}"
        coordinates, muscles, signs, bad = _model_names(root, model, where)
        problems += bad
        key = f"config.yaml key models.{model}"
        if coordinates:
            for dof in setup.get("dofs") or []:
                if dof not in coordinates:
                    problems.append(f"{key}.dofs: {dof!r} is not a coordinate of model {model}"
                                    f"{_did_you_mean(dof, coordinates)}. Fix: use one of the "
                                    "model's coordinate names")
        if muscles:
            for mtu in setup.get("excitations") or {}:
                if mtu not in muscles:
                    problems.append(f"{key}.excitations: {mtu!r} is not a muscle of model "
                                    f"{model}{_did_you_mean(mtu, muscles)}. Fix: use the "
                                    "model's muscle names")
        problems += _uncrossed_dofs(root, model, row, setup, signs, coordinates, key)
        for kind in ("marker_set", "measurement_set"):
            value = setup.get(kind) or config["opensim"]["scale"].get(kind)
            problems += _check_set_file(root, value, kind, model)
    return problems


def _uncrossed_dofs(root: Path, model: str, row: dict[str, Any], setup: dict[str, Any],
                    signs: dict | None, coordinates: list[str], key: str) -> list[str]:
    """Tracked DOFs (``tracked_dofs``, else ``dofs``) that no calibrated MTU
    (``calibrated_mtus``, else ``excitations``) crosses: from the built-in model's moment-arm
    signs, or from OpenSim's moment arms for a user's ``.osim`` (the model column's file, else
    the subject's ``scaled_model``)."""
    dof_key = "tracked_dofs" if setup.get("tracked_dofs") else "dofs"
    mtu_key = "calibrated_mtus" if setup.get("calibrated_mtus") else "excitations"
    dofs = list(setup.get(dof_key) or [])
    mtus = list(setup.get(mtu_key) or [])
    if not dofs or not mtus:
        return []
    where = ""
    if signs is not None:
        crossing = {mtu: set(signs.get(mtu, {})) for mtu in mtus}
    else:
        path = _user_osim(root, model, row)
        if path is None:
            return []
        from pipeline.osim.crossing import crossed_coordinates

        try:
            crossing = crossed_coordinates(path, mtus, dofs)
        except Exception as exc:  # OpenSim raises its own RuntimeError subclasses
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return [f"{key}: model file {path} cannot be loaded by OpenSim ({first}). "
                    "Fix: open it in the OpenSim GUI, repair it and save it again"]
        from pipeline.rule_params import study_relative

        where = f" in model file {study_relative(root, path)}"
        coordinates = _osim_names(path)[0]
    crossed = set().union(*crossing.values()) if crossing else set()
    return [f"{key}.{dof_key}: no MTU under {mtu_key} crosses {dof!r}{where}, so its moment "
            f"cannot be tracked. Fix: remove it from {dof_key} or add the MTUs that cross it"
            for dof in dofs if dof in coordinates and dof not in crossed]


def _user_osim(root: Path, model: str, row: dict[str, Any]) -> Path | None:
    for value in (model, row.get("scaled_model")):
        if isinstance(value, str) and value.endswith(".osim"):
            path = Path(value) if Path(value).is_absolute() else root / value
            if path.is_file():
                return path
    return None


def _check_set_file(root: Path, value: str | None, kind: str, model: str) -> list[str]:
    if not value:
        return []
    from pipeline import resources

    candidates = ([Path(value)] if Path(value).is_absolute()
                  else [root / value, resources.template_dir() / value,
                        resources.opensim_template_dir() / value])
    path = next((c for c in candidates if c.is_file()), None)
    key = f"config.yaml key opensim.scale.{kind} (or models.{model}.{kind})"
    if path is None:
        return [f"{key}: file {value!r} not found in the study folder or the package's templates. "
                "Fix: correct the path (relative to the study folder)"]
    tag = {"marker_set": "MarkerSet", "measurement_set": "MeasurementSet"}[kind]
    try:
        root_el = _xml_root(path)
    except (ET.ParseError, OSError) as exc:
        return [f"{key}: {value} cannot be parsed as XML ({exc}). Fix: repair or re-export it"]
    if root_el.tag != tag and root_el.find(f".//{tag}") is None:
        return [f"{key}: {value} holds no <{tag}>. Fix: point it at an OpenSim {tag} file"]
    return []


def check_data(root: Path, config: dict[str, Any], subjects: Sheet,
               trials: Sheet) -> list[str]:
    """Every check that opens a data file; one message per problem."""
    return _check_trials(root, config, subjects, trials) + _check_models(root, config, subjects)
