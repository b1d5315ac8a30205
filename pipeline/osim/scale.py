"""Scaling: OpenSim's ScaleTool (measurement-based scaling, then marker placement).

Inputs: the generic model, the static trial's ``.trc``, a marker set (or the model's own
markers), a measurement set, the marker placer's task weights and the subject's mass. Outputs:
the scaled model, a JSON report (scale factors, marker errors) and, beside them, the resolved
``setup_scale.xml`` with its ``scale_set.xml`` and ``static_pose.mot``.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ScalingError, describe
from pipeline.fileio import write_json_atomic
from pipeline.io.opensim_files import MarkerTable, read_sto, read_trc
from pipeline.osim.coordinates import coordinate_values_si
from pipeline.osim.model_io import load_model
from pipeline.osim.staging import array_double, array_str, print_setup, publish, rel, staging_dir

log = logging.getLogger(__name__)

SETUP_NAME = "setup_scale.xml"
SCALE_SET_NAME = "scale_set.xml"
STATIC_POSE_NAME = "static_pose.mot"
SCALED_ONLY_NAME = "scaled_only.osim"


@dataclass(frozen=True)
class ScaleResult:
    model_path: Path
    report: dict[str, Any]


def static_markers(markers: MarkerTable, time_range_s: tuple[float, float] | None = None, *,
                   min_fraction: float = 0.5) -> list[str]:
    """Markers with data in at least ``min_fraction`` of the static frames in the time range."""
    t = markers.times_s
    keep = np.ones(len(t), dtype=bool) if time_range_s is None else (
        (t >= time_range_s[0] - 1e-9) & (t <= time_range_s[1] + 1e-9))
    present = np.isfinite(markers.xyz_m[keep]).all(axis=2).mean(axis=0)
    return [n for n, f in zip(markers.labels, present, strict=True) if f >= min_fraction]


def marker_names_in_file(path: str | Path) -> list[str]:
    """Names of the ``<Marker>`` elements of a marker-set (or model) XML file."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ScalingError(describe(path, f"marker set is not readable XML ({exc})",
                                    "check the file named by opensim.scale.marker_set")) from exc
    return [m.get("name", "") for m in root.iter("Marker")]


def _measurement_markers(measurement_set: Any) -> set[str]:
    names: set[str] = set()
    for i in range(measurement_set.getSize()):
        measurement = measurement_set.get(i)
        if not measurement.getApply():
            continue
        pairs = measurement.getMarkerPairSet()
        for j in range(pairs.getSize()):
            pair = pairs.get(j)
            names.update((pair.getMarkerName(0), pair.getMarkerName(1)))
    return names


def replace_tasks(tasks: Any, task_set: str | Path, keep: list[Any]) -> None:
    """Replace the IK tasks of a tool with those of the IKTaskSet file ``task_set``.

    The loaded set is appended to ``keep`` so it outlives the tool (OpenSim objects handed to a
    tool must keep a Python reference).
    """
    import opensim as osim

    loaded = osim.IKTaskSet(str(task_set))
    keep.append(loaded)
    tasks.clearAndDestroy()
    for i in range(loaded.getSize()):
        tasks.cloneAndAppend(loaded.get(i))


def apply_marker_weights(task_set: Any, weights: Mapping[str, float]) -> None:
    """Set the weight of each named marker task of an IKTaskSet (adding missing tasks); a task
    with weight 0 is not applied. Shared by scaling (marker placement) and IK."""
    import opensim as osim

    for marker, weight in weights.items():
        index = task_set.getIndex(marker)
        if index < 0:
            task = osim.IKMarkerTask()
            task.setName(marker)
            task_set.cloneAndAppend(task)
            index = task_set.getIndex(marker)
        task = task_set.get(index)
        task.setWeight(float(weight))
        task.setApply(float(weight) > 0)


def marker_tasks(task_set: Any) -> dict[str, float]:
    """Applied marker tasks of an IKTaskSet: marker name -> weight (> 0)."""
    import opensim as osim

    tasks = {}
    for i in range(task_set.getSize()):
        task = task_set.get(i)
        if osim.IKMarkerTask.safeDownCast(task) is None:
            continue
        if task.getApply() and task.getWeight() > 0:
            tasks[task.getName()] = task.getWeight()
    return tasks


def scale_model(
    generic_model: str | Path,
    static_trc: str | Path,
    *,
    out_model: str | Path,
    report_path: str | Path,
    mass_kg: float,
    height_m: float | None = None,
    setup_template: str | Path | None = None,
    marker_set: str | Path | None = None,
    measurement_set: str | Path | None = None,
    task_set: str | Path | None = None,
    task_weights: Mapping[str, float] | None = None,
    time_range_s: tuple[float, float] | None = None,
    max_marker_error_m: float = 0.04,
    subject: str = "subject",
    provenance: Mapping[str, Any] | None = None,
    static_pose_deg: Mapping[str, float] | None = None,
    measurement_source: str = "file",
) -> ScaleResult:
    """Scale ``generic_model`` to the static trial and place its markers.

    ``setup_template`` is a ScaleTool setup whose measurement set, scale set and marker placer
    tasks are kept (its files are replaced by the arguments); without it a setup is built from
    ``measurement_set`` (required then) and ``task_set`` (default: every marker, weight 1).
    ``task_weights`` (marker -> weight, 0 disables) override the task weights. ``provenance``
    goes into the report as is. ``static_pose_deg`` (coordinate -> value, degrees for rotations,
    metres for translations) holds those coordinates at that value in the marker placer's static
    pose. ``measurement_source`` (file | derived) is recorded per body in the report.
    """
    import opensim as osim

    generic_model, static_trc = Path(generic_model).resolve(), Path(static_trc).resolve()
    out_model, report_path = Path(out_model).resolve(), Path(report_path).resolve()
    out_dir = out_model.parent
    # A rerun that fails must not leave the previous run's side files beside its error.
    for stale in (SCALE_SET_NAME, SCALED_ONLY_NAME, STATIC_POSE_NAME, SETUP_NAME):
        (out_dir / stale).unlink(missing_ok=True)
    generic = load_model(generic_model, error_cls=ScalingError,
                         fix="check the model column of subjects.tsv")
    markers = read_trc(static_trc, error_cls=ScalingError,
                       fix="run the C3D stage first, or check trials.tsv")
    if time_range_s is None:
        time_range_s = (float(markers.times_s[0]), float(markers.times_s[-1]))

    tool = osim.ScaleTool(str(setup_template)) if setup_template else osim.ScaleTool()
    tool.setName(subject)
    tool.setSubjectMass(float(mass_kg))
    if height_m is not None:
        tool.setSubjectHeight(float(height_m) * 1000.0)  # OpenSim documents height in mm
    scaler, placer = tool.getModelScaler(), tool.getMarkerPlacer()
    # Keep references to every OpenSim object handed to the tool.
    keep: list[Any] = [generic]
    if measurement_set is not None:
        loaded_object = osim.OpenSimObject.makeObjectFromFile(str(measurement_set))
        measurements = osim.MeasurementSet.safeDownCast(loaded_object)
        if measurements is None:
            raise ScalingError(describe(measurement_set, "not a MeasurementSet XML file",
                                        "point opensim.scale.measurement_set at one"))
        keep += [loaded_object, measurements]
        scaler.setMeasurementSet(measurements)
        scaler.setScalingOrder(array_str(["measurements"]))
    elif setup_template is None:
        raise ScalingError(describe(
            generic_model, "no measurement set for this model",
            "set opensim.scale.measurement_set (or models.<model>.measurement_set) to a "
            "MeasurementSet XML file"))
    scaler.setApply(True)
    placer.setApply(True)
    tasks = placer.getIKTaskSet()
    if task_set is not None:
        replace_tasks(tasks, task_set, keep)
    elif setup_template is None:
        names = (marker_names_in_file(marker_set) if marker_set is not None
                 else [generic.getMarkerSet().get(i).getName()
                       for i in range(generic.getMarkerSet().getSize())])
        usable = set(static_markers(markers, time_range_s))
        absent = [n for n in names if n not in usable]
        if absent:
            log.info("%s: model markers not in the static trial or with data in under half of "
                     "its frames (not used): %s", static_trc, ", ".join(absent))
        apply_marker_weights(tasks, dict.fromkeys([n for n in names if n in usable], 1.0))
    apply_marker_weights(tasks, dict(task_weights or {}))
    _fix_coordinates(tasks, generic, dict(static_pose_deg or {}), static_trc)

    model_markers = set(marker_names_in_file(marker_set) if marker_set is not None else
                        [generic.getMarkerSet().get(i).getName()
                         for i in range(generic.getMarkerSet().getSize())])
    _check_markers(static_trc, model_markers, set(markers.labels),
                   set(marker_tasks(tasks)) | _measurement_markers(scaler.getMeasurementSet()))

    with staging_dir(out_dir) as stage:
        _configure(tool, stage, generic_model, static_trc, marker_set, time_range_s,
                   out_model.name)
        print_setup(tool, stage / SETUP_NAME)
        staged_tool = osim.ScaleTool(str(stage / SETUP_NAME))
        keep.append(staged_tool)
        log.info("Scaling %s to %s (%.2f kg)", generic_model, static_trc, mass_kg)
        try:
            ok = staged_tool.run()
        except RuntimeError as exc:
            log.error("ScaleTool: %s", exc)
            ok = False
        if not ok:
            raise ScalingError(describe(
                static_trc, "OpenSim's ScaleTool failed (see the OpenSim messages in the log)",
                "check the marker names of the marker set and measurement set against the trial"))
        staged_model = stage / out_model.name
        if not staged_model.is_file():
            raise ScalingError(describe(staged_model, "ScaleTool reported success but wrote no "
                                        "model", "check the marker placer settings"))
        unplaced = _drop_unplaced_markers(staged_model,
                                          set(static_markers(markers, time_range_s)))
        report = _report(staged_model, stage, markers, marker_tasks(tasks), time_range_s)
        report["unplaced_markers_removed"] = unplaced
        report["bodies"] = body_table(report["scale_factors"],
                                      measurement_pairs(scaler.getMeasurementSet()),
                                      source=measurement_source)
        report["warnings"] = [row["warning"] for row in report["bodies"].values()
                              if row.get("warning")]
        for message in report["warnings"]:
            log.warning("%s", message)
        if static_pose_deg:
            report["static_pose_deg"] = dict(static_pose_deg)
        report.update({
            "generic_model": str(generic_model), "static_trc": str(static_trc),
            "scaled_model": str(out_model), "mass_kg": float(mass_kg),
            "time_range_s": list(time_range_s), "max_marker_error_threshold_m":
            float(max_marker_error_m), "unknown_trial_markers":
            sorted(set(markers.labels) - model_markers), "setup": SETUP_NAME,
        })
        if provenance is not None:
            report["provenance"] = dict(provenance)
        if report["marker_max_error_m"] > max_marker_error_m:
            worst = sorted(report["marker_errors_m"].items(), key=lambda kv: -kv[1])[:5]
            listing = ", ".join(f"{name} {err * 1000:.1f} mm" for name, err in worst)
            raise ScalingError(describe(
                static_trc, "maximum marker error of the scaled model (before marker placement) "
                f"is "
                f"{report['marker_max_error_m'] * 1000:.1f} mm, above "
                f"opensim.scale.max_marker_error_m = {max_marker_error_m * 1000:.1f} mm "
                f"(worst: {listing})",
                "check those markers' labels and placement in the static trial, lower their "
                "weight in the marker placer tasks, or raise opensim.scale.max_marker_error_m"))
        _configure(tool, out_dir, generic_model, static_trc, marker_set, time_range_s,
                   out_model.name)
        print_setup(tool, stage / "final_setup.xml")
        publish([(stage / SCALE_SET_NAME, out_dir / SCALE_SET_NAME),
                 (stage / SCALED_ONLY_NAME, out_dir / SCALED_ONLY_NAME),
                 (stage / STATIC_POSE_NAME, out_dir / STATIC_POSE_NAME),
                 (stage / "final_setup.xml", out_dir / SETUP_NAME),
                 (staged_model, out_model)])
    write_json_atomic(report_path, report)
    log.info("Scaled model %s: marker RMS %.1f mm, max %.1f mm (%s)", out_model,
             report["marker_rms_error_m"] * 1000, report["marker_max_error_m"] * 1000,
             report["max_error_marker"])
    return ScaleResult(out_model, report)


FACTOR_RANGE = (0.7, 1.4)


def _drop_unplaced_markers(model_path: Path, placed: set[str]) -> list[str]:
    """Remove from the scaled model the markers the static trial could not place (absent, or
    with data in under half of its frames): IK would track them at a guessed location."""
    import opensim as osim

    model = osim.Model(str(model_path))
    markers = model.updMarkerSet()
    names = [markers.get(i).getName() for i in range(markers.getSize())]
    drop = [n for n in names if n not in placed]
    if not drop:
        return []
    for name in drop:
        markers.remove(markers.get(name))
    model.finalizeConnections()
    model.printToXML(str(model_path))
    log.info("%s: markers without enough static data, removed from the scaled model (not used "
             "by IK): %s", model_path.name, ", ".join(drop))
    return drop


def measurement_pairs(measurement_set: Any) -> dict[str, list[list[str]]]:
    """Body -> marker pairs of the applied measurements that scale it."""
    out: dict[str, list[list[str]]] = {}
    for i in range(measurement_set.getSize()):
        meas = measurement_set.get(i)
        if not meas.getApply():
            continue
        pairs = meas.getMarkerPairSet()
        names = [[pairs.get(j).getMarkerName(0), pairs.get(j).getMarkerName(1)]
                 for j in range(pairs.getSize())]
        bodies = meas.getBodyScaleSet()
        for j in range(bodies.getSize()):
            listed = out.setdefault(bodies.get(j).getName(), [])
            listed += [p for p in names if p not in listed]
    return out


def body_table(factors: Mapping[str, list[float]], pairs: Mapping[str, list[list[str]]], *,
               source: str, factor_range: tuple[float, float] = FACTOR_RANGE
               ) -> dict[str, dict[str, Any]]:
    """Per body: scale factors, marker pairs, where the pairs come from, and a warning when a
    factor is exactly 1 (the body was not scaled) or outside ``factor_range``."""
    rows: dict[str, dict[str, Any]] = {}
    lo, hi = factor_range
    for body, xyz in factors.items():
        if body == "ground":
            continue
        row: dict[str, Any] = {"factors": [float(v) for v in xyz],
                               "pairs": pairs.get(body, []), "source": source}
        if all(v == 1.0 for v in xyz):
            row["warning"] = (f"body {body}: scale factor exactly 1 (not scaled: no marker pair "
                              "measures it); add a pair in models.<model>.scaling.pairs if its "
                              "size matters")
        elif any(v < lo or v > hi for v in xyz):
            row["warning"] = (f"body {body}: scale factors {', '.join(f'{v:.3f}' for v in xyz)} "
                              f"outside {lo}-{hi} (pairs "
                              f"{'; '.join('-'.join(p) for p in row['pairs']) or 'none'}); check "
                              "those markers' mapping and placement in the static trial, or set "
                              "the pairs in models.<model>.scaling.pairs")
        rows[body] = row
    return rows


def _fix_coordinates(tasks: Any, model: Any, values: Mapping[str, float], file: Path) -> None:
    """Marker-placer coordinate tasks that hold coordinates at the given static-pose values."""
    import opensim as osim

    coords = model.getCoordinateSet()
    unknown = sorted(name for name in values if not coords.contains(name))
    if unknown:
        raise ScalingError(describe(file, f"static_pose_deg names coordinates the model lacks: "
                                    f"{', '.join(unknown)}",
                                    "use coordinate names of the model in "
                                    "models.<model>.scaling.static_pose_deg"))
    for name, value in values.items():
        rotational = coords.get(name).getMotionType() == osim.Coordinate.Rotational
        task = osim.IKCoordinateTask()
        task.setName(name)
        task.setValueType(osim.IKCoordinateTask.ManualValue)
        task.setValue(math.radians(float(value)) if rotational else float(value))
        task.setWeight(1.0e4)
        task.setApply(True)
        index = tasks.getIndex(name)
        if index >= 0:
            tasks.remove(index)
        tasks.cloneAndAppend(task)


def _configure(tool: Any, setup_dir: Path, generic_model: Path, static_trc: Path,
               marker_set: str | Path | None, time_range_s: tuple[float, float],
               model_name: str) -> None:
    """Point the tool's files at ``setup_dir`` (ScaleTool resolves paths against its setup)."""
    maker = tool.getGenericModelMaker()
    maker.setModelFileName(rel(generic_model, setup_dir))
    maker.setMarkerSetFileName(rel(marker_set, setup_dir) if marker_set else "Unassigned")
    scaler, placer = tool.getModelScaler(), tool.getMarkerPlacer()
    for step in (scaler, placer):
        step.setMarkerFileName(rel(static_trc, setup_dir))
        step.setTimeRange(array_double(time_range_s))
    scaler.setOutputModelFileName(SCALED_ONLY_NAME)
    scaler.setOutputScaleFileName(SCALE_SET_NAME)
    placer.setOutputModelFileName(model_name)
    placer.setOutputMotionFileName(STATIC_POSE_NAME)
    placer.setOutputMarkerFileName("Unassigned")
    placer.setCoordinateFileName("Unassigned")


def _check_markers(trc: Path, model_markers: set[str], trial_markers: set[str],
                   used: set[str]) -> None:
    unknown_trial = sorted(trial_markers - model_markers)
    absent = sorted((used & model_markers) - trial_markers)
    undefined = sorted(used - model_markers)
    if absent or undefined or not (used & trial_markers):
        parts = []
        if absent:
            parts.append(f"model markers absent from the trial: {', '.join(absent)}")
        if undefined:
            parts.append(f"markers named by the measurement set or tasks but not in the model "
                         f"marker set: {', '.join(undefined)}")
        if unknown_trial:
            parts.append(f"trial markers unknown to the model: {', '.join(unknown_trial)}")
        raise ScalingError(describe(
            trc, "marker set and static trial do not match (" + "; ".join(parts) + ")",
            "rename the markers in the C3D/marker set so they agree, choose another marker set "
            "(opensim.scale.marker_set), or give the missing markers weight 0 in "
            "opensim.ik.task_weights"))
    if unknown_trial:
        log.warning("%s: trial markers unknown to the model (ignored by scaling): %s", trc,
                    ", ".join(unknown_trial))


def _marker_errors(model_path: Path, pose_path: Path, markers: MarkerTable,
                   tasks: dict[str, float], time_range_s: tuple[float, float]) -> dict[str, float]:
    """Distance between each task marker of the model, posed by ``pose_path``, and the trial's
    marker averaged over ``time_range_s`` (what OpenSim's marker placer reports)."""
    model = load_model(model_path, error_cls=ScalingError)
    state = model.initSystem()
    pose = read_sto(pose_path, error_cls=ScalingError, require_rows=True, state_values=True)
    coords = model.getCoordinateSet()
    for name, values in coordinate_values_si(model, pose).items():
        coords.get(name).setValue(state, float(values[0]), False)
    model.realizePosition(state)
    in_window = (markers.times_s >= time_range_s[0] - 1e-9) & (
        markers.times_s <= time_range_s[1] + 1e-9)
    mean_m = np.nanmean(markers.xyz_m[in_window], axis=0)
    errors = {}
    marker_set = model.getMarkerSet()
    for name in tasks:
        if not marker_set.contains(name) or name not in markers.labels:
            continue
        location = marker_set.get(name).getLocationInGround(state)
        model_xyz = np.array([location.get(k) for k in range(3)])
        errors[name] = float(np.linalg.norm(model_xyz - mean_m[markers.labels.index(name)]))
    return errors


def _report(model_path: Path, stage: Path, markers: MarkerTable, tasks: dict[str, float],
            time_range_s: tuple[float, float]) -> dict[str, Any]:
    """Scale factors, and marker errors of the static pose before and after marker placement.

    ``marker_errors_m`` (checked against the threshold) are those of the scaled model before its
    markers are moved: after placement, movable markers sit on the data by construction.
    """
    import opensim as osim

    scale_set = osim.ScaleSet(str(stage / SCALE_SET_NAME))
    factors = {}
    for i in range(scale_set.getSize()):
        scale = scale_set.get(i)
        if scale.getSegmentName().endswith("_offset"):
            continue
        vec = scale.getScaleFactors()
        factors[scale.getSegmentName()] = [vec.get(k) for k in range(3)]
    pose = stage / STATIC_POSE_NAME
    errors = _marker_errors(stage / SCALED_ONLY_NAME, pose, markers, tasks, time_range_s)
    placed = _marker_errors(model_path, pose, markers, tasks, time_range_s)
    values = np.array(list(errors.values()))
    placed_values = np.array(list(placed.values()))
    scaled = load_model(model_path, error_cls=ScalingError)
    return {
        "scale_factors": factors,
        "marker_errors_m": errors,
        "marker_rms_error_m": float(math.sqrt(np.mean(values**2))),
        "marker_max_error_m": float(values.max()),
        "max_error_marker": max(errors, key=errors.__getitem__),
        "placed_marker_errors_m": placed,
        "placed_marker_rms_error_m": float(math.sqrt(np.mean(placed_values**2))),
        "placed_marker_max_error_m": float(placed_values.max()),
        "scaled_mass_kg": float(scaled.getTotalMass(scaled.initSystem())),
    }
