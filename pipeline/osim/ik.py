"""Inverse kinematics: OpenSim's InverseKinematicsTool with marker task weights.

Outputs the coordinates (``.mot``, degrees, as OpenSim writes them), the marker errors per
frame (``_ik_marker_errors.sto``: total squared error, RMS and maximum marker error, m) and the
resolved ``setup_ik.xml`` beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import IKError, describe
from pipeline.io.opensim_files import read_sto, read_trc
from pipeline.osim.model_io import load_model
from pipeline.osim.scale import (
    apply_marker_weights,
    marker_tasks,
    replace_tasks,
)
from pipeline.osim.staging import print_setup, publish, rel, staging_dir, working_dir

log = logging.getLogger(__name__)

SETUP_NAME = "setup_ik.xml"
ERRORS_NAME = "_ik_marker_errors.sto"  # OpenSim's name: <tool name>_ik_marker_errors.sto
ON_ERROR = ("warn", "fail")


@dataclass(frozen=True)
class IKResult:
    motion_path: Path
    errors_path: Path
    max_rms_error_m: float
    mean_rms_error_m: float
    max_marker_error_m: float
    frames_above_threshold: int


def run_inverse_kinematics(
    model_path: str | Path,
    trc_path: str | Path,
    *,
    out_mot: str | Path,
    setup_template: str | Path | None = None,
    task_set: str | Path | None = None,
    task_weights: Mapping[str, float] | None = None,
    time_range_s: tuple[float, float] | None = None,
    max_rms_error_m: float = 0.02,
    on_error: str = "warn",
    accuracy: float = 1e-5,
    constraint_weight: float = float("inf"),
) -> IKResult:
    """Solve IK of ``trc_path`` with ``model_path``; check the per-frame RMS marker error.

    Tasks come from ``setup_template`` (an IK setup), else ``task_set`` (an IKTaskSet file),
    else every model marker with weight 1; ``task_weights`` (marker -> weight, 0 disables)
    override them. Frames whose RMS marker error exceeds ``max_rms_error_m`` are logged
    (``on_error="warn"``) or stop the step (``"fail"``).
    """
    import opensim as osim

    if on_error not in ON_ERROR:
        raise IKError(describe(None, f"opensim.ik.on_error is {on_error!r}",
                               f"use one of {', '.join(ON_ERROR)}"))
    model_path, trc_path = Path(model_path).resolve(), Path(trc_path).resolve()
    out_mot = Path(out_mot).resolve()
    out_dir = out_mot.parent
    model = load_model(model_path, error_cls=IKError,
                       fix="rerun the scale step (results/<subject>/model/scaled.osim)")
    markers = read_trc(trc_path, error_cls=IKError,
                       fix="run the C3D stage first, or check trials.tsv")
    if time_range_s is None:
        time_range_s = (float(markers.times_s[0]), float(markers.times_s[-1]))

    tool = (osim.InverseKinematicsTool(str(setup_template), False) if setup_template
            else osim.InverseKinematicsTool())
    tool.setName("")
    keep: list[Any] = [model]
    tasks = tool.getIKTaskSet()
    model_markers = [model.getMarkerSet().get(i).getName()
                     for i in range(model.getMarkerSet().getSize())]
    if task_set is not None:
        replace_tasks(tasks, task_set, keep)
    elif setup_template is None:
        apply_marker_weights(tasks, dict.fromkeys(model_markers, 1.0))
    apply_marker_weights(tasks, dict(task_weights or {}))
    _check_tasks(trc_path, marker_tasks(tasks), set(model_markers), set(markers.labels))
    if setup_template is None:
        tool.set_accuracy(float(accuracy))
        tool.set_constraint_weight(float(constraint_weight))
    tool.set_report_errors(True)

    with staging_dir(out_dir) as stage:
        _configure(tool, stage, model_path, trc_path, time_range_s, out_mot.name)
        print_setup(tool, stage / SETUP_NAME)
        log.info("IK of %s with %s over [%.3f, %.3f] s", trc_path, model_path, *time_range_s)
        with working_dir(stage):
            staged_tool = osim.InverseKinematicsTool(SETUP_NAME, True)
            keep.append(staged_tool)
            try:
                ok = staged_tool.run()
            except RuntimeError as exc:
                log.error("InverseKinematicsTool: %s", exc)
                ok = False
        staged_mot, staged_errors = stage / out_mot.name, stage / ERRORS_NAME
        if not ok or not staged_mot.is_file():
            raise IKError(describe(trc_path, "OpenSim's InverseKinematicsTool failed (see the "
                                   "OpenSim messages in the log)",
                                   "check the markers and the time range of the trial"))
        result = _check_errors(staged_errors, trc_path, max_rms_error_m=max_rms_error_m,
                               on_error=on_error)
        _configure(tool, out_dir, model_path, trc_path, time_range_s, out_mot.name)
        print_setup(tool, stage / "final_setup.xml")
        publish([(staged_errors, out_dir / ERRORS_NAME),
                 (stage / "final_setup.xml", out_dir / SETUP_NAME),
                 (staged_mot, out_mot)])
    return IKResult(out_mot, out_dir / ERRORS_NAME, *result)


def marker_time_range(trc_path: str | Path, *, start_s: float | None = None,
                      end_s: float | None = None,
                      min_marker_fraction: float = 0.75) -> tuple[float, float]:
    """IK's time range: the trial's window (``start_s``/``end_s``, either may be None) less the
    frames at either end where fewer than ``min_marker_fraction`` of the trial's markers have
    data (a subject entering or leaving the capture volume). One INFO line says what was left
    out; an error names the file when no frame is left."""
    markers = read_trc(trc_path, error_cls=IKError,
                       fix="run the C3D stage first, or check trials.tsv")
    t = markers.times_s
    lo = -np.inf if start_s is None or start_s != start_s else float(start_s)
    hi = np.inf if end_s is None or end_s != end_s else float(end_s)
    in_window = (t >= lo - 1e-9) & (t <= hi + 1e-9)
    present = np.isfinite(markers.xyz_m).all(axis=2).mean(axis=1)
    good = np.flatnonzero(in_window & (present >= min_marker_fraction))
    if good.size < 2:
        raise IKError(describe(
            trc_path, f"fewer than 2 frames in [{max(lo, t[0]):.3f}, {min(hi, t[-1]):.3f}] s "
            f"have at least {min_marker_fraction:.0%} of the markers",
            "check the trial's start_s/end_s in trials.tsv, or lower "
            "opensim.ik.min_marker_fraction"))
    window = np.flatnonzero(in_window)
    first, last = int(good[0]), int(good[-1])
    if first > window[0] or last < window[-1]:
        log.info("%s: %d frame(s) at the start and %d at the end have fewer than %.0f%% of the "
                 "markers and are left out: IK runs over [%.3f, %.3f] s", trc_path,
                 first - int(window[0]), int(window[-1]) - last, 100 * min_marker_fraction,
                 t[first], t[last])
    return float(t[first]), float(t[last])


def _configure(tool: Any, setup_dir: Path, model_path: Path, trc_path: Path,
               time_range_s: tuple[float, float], mot_name: str) -> None:
    tool.set_model_file(rel(model_path, setup_dir))
    tool.setMarkerDataFileName(rel(trc_path, setup_dir))
    tool.setCoordinateFileName("")
    tool.setStartTime(float(time_range_s[0]))
    tool.setEndTime(float(time_range_s[1]))
    tool.setResultsDir(".")
    tool.setOutputMotionFileName(mot_name)


def _check_tasks(trc: Path, tasks: Mapping[str, float], model_markers: set[str],
                 trial_markers: set[str]) -> None:
    undefined = sorted(set(tasks) - model_markers)
    if undefined:
        log.warning("%s: IK tasks name markers the model lacks (ignored): %s", trc,
                    ", ".join(undefined))
    used = set(tasks) & model_markers
    absent = sorted(used - trial_markers)
    if absent:
        log.warning("%s: model markers absent from the trial (not tracked): %s", trc,
                    ", ".join(absent))
    if len(used & trial_markers) < 3:
        unknown = sorted(trial_markers - model_markers)
        raise IKError(describe(
            trc, f"fewer than 3 weighted model markers are in the trial (absent: "
            f"{', '.join(absent) or 'none'}; trial markers unknown to the model: "
            f"{', '.join(unknown) or 'none'})",
            "rename the markers so the model's marker set and the trial agree"))


def _check_errors(errors_path: Path, trc: Path, *, max_rms_error_m: float,
                  on_error: str) -> tuple[float, float, float, int]:
    table = read_sto(errors_path, error_cls=IKError, require_rows=True, state_values=True)
    rms = table.column("marker_error_RMS")
    worst = table.column("marker_error_max")
    above = rms > max_rms_error_m
    summary = (float(rms.max()), float(rms.mean()), float(worst.max()), int(above.sum()))
    if above.any():
        t_worst = float(table.time_s[int(np.argmax(rms))])
        message = describe(
            trc, f"RMS marker error exceeds opensim.ik.max_rms_error_m = "
            f"{max_rms_error_m * 1000:.1f} mm in {above.sum()} of {len(rms)} frames (worst "
            f"{rms.max() * 1000:.1f} mm at t = {t_worst:.3f} s)",
            "check marker labels and gaps in that trial, the scaled model's marker placement, "
            "or the task weights (opensim.ik.task_weights)")
        if on_error == "fail":
            raise IKError(message)
        log.warning("%s", message)
    log.info("IK marker error: mean RMS %.1f mm, max RMS %.1f mm, max %.1f mm",
             summary[1] * 1000, summary[0] * 1000, summary[2] * 1000)
    return summary
