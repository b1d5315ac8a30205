"""Muscle analysis: MTU lengths and moment arms about the calibrated coordinates.

Direct API calls, not AnalyzeTool/MuscleAnalysis: AnalyzeTool also computes fibre lengths,
forces, velocities and moments for every muscle and every coordinate, and its moment arms come
from ``Muscle::computeMomentArm`` which projects the speeds and forms the equivalent generalized
forces once per (muscle, coordinate, frame). Here, per frame, the coordinates are written straight
into the state's Q vector and the position stage is realised once; the lengths are read from the
paths; then for each requested coordinate the state's speeds are set to the coordinate's unit
motion (with the exact derivative of any CoordinateCouplerConstraint, e.g. the patella) and the
velocity stage is realised once, so that each crossing MTU's moment arm is the exact analytic
``r = -dL/dq = -(lengthening speed)``. Only MTUs that cross a coordinate are evaluated (found on
sample frames); the others get exactly 0. ``python -m pipeline bench muscle-analysis`` measures it.

Outputs in ``out_dir``: ``mtu_length.sto`` (m) and ``moment_arm_<coord>.sto`` (m), columns = MTUs,
and ``setup_analyze.xml``: the equivalent AnalyzeTool + MuscleAnalysis setup for
``opensim-cmd run-tool``.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import MuscleAnalysisError, describe
from pipeline.io.opensim_files import StoTable, format_sto, read_sto
from pipeline.osim.coordinates import check_coordinate_ranges, coordinate_values_si
from pipeline.osim.model_io import coordinate_names, load_model, muscle_names
from pipeline.osim.staging import array_str, print_setup, publish, rel, staging_dir

log = logging.getLogger(__name__)

LENGTH_NAME = "mtu_length.sto"
SETUP_NAME = "setup_analyze.xml"
CROSSING_THRESHOLD_M = 1e-9
N_SAMPLE_FRAMES = 8


def moment_arm_name(coordinate: str) -> str:
    return f"moment_arm_{coordinate}.sto"


@dataclass(frozen=True)
class MuscleGeometry:
    """Shapes: ``mtu_length_m`` (muscle, time); ``moment_arm_m`` (muscle, coordinate, time)."""

    time_s: np.ndarray
    mtu_names: tuple[str, ...]
    coordinate_names: tuple[str, ...]
    mtu_length_m: np.ndarray
    moment_arm_m: np.ndarray


def _check_names(model: Any, mtus: Sequence[str], coords: Sequence[str], file: Path) -> None:
    known_mtus, known_coords = muscle_names(model), coordinate_names(model)
    problems = []
    for name in mtus:
        if name not in known_mtus:
            close = difflib.get_close_matches(name, known_mtus, n=3)
            problems.append(f"MTU {name!r} is not a muscle of the model"
                            + (f" (did you mean {', '.join(close)}?)" if close else ""))
    for name in coords:
        if name not in known_coords:
            close = difflib.get_close_matches(name, known_coords, n=3)
            problems.append(f"coordinate {name!r} is not in the model"
                            + (f" (did you mean {', '.join(close)}?)" if close else ""))
    if problems:
        raise MuscleAnalysisError(describe(file, "; ".join(problems),
                                           "correct models.<model>.excitations / dofs in "
                                           "config.yaml to the model's names"))


class _Couplers:
    """CoordinateCouplerConstraints: dependent q = f(independent q), with exact derivatives."""

    def __init__(self, model: Any) -> None:
        import opensim as osim

        self.items: list[tuple[str, list[str], Any]] = []
        self.other_constraints: list[str] = []
        constraints = model.getConstraintSet()
        for i in range(constraints.getSize()):
            constraint = constraints.get(i)
            if not constraint.isEnforced(model.getWorkingState()):
                continue
            coupler = osim.CoordinateCouplerConstraint.safeDownCast(constraint)
            if coupler is None:
                self.other_constraints.append(constraint.getName())
                continue
            names = coupler.getIndependentCoordinateNames()
            independent = [names.get(k) for k in range(names.getSize())]
            self.items.append((coupler.getDependentCoordinateName(), independent,
                               coupler.getFunction()))

    @property
    def dependents(self) -> set[str]:
        return {dep for dep, _, _ in self.items}


def compute_muscle_geometry(model: Any, coordinates: StoTable, *, mtu_names: Sequence[str],
                            coordinate_names: Sequence[str],
                            file: str | Path = "coordinates") -> MuscleGeometry:
    """MTU lengths and moment arms of ``mtu_names`` about ``coordinate_names`` per frame.

    ``coordinates`` holds the model's coordinates over time (IK output; degrees honoured).
    Coordinates absent from it keep their default values; dependent coordinates of coupler
    constraints are always computed from the constraint (as IK and assembly would).
    """
    import opensim as osim

    file = Path(file)
    mtu_names, coordinate_names = tuple(mtu_names), tuple(coordinate_names)
    _check_names(model, mtu_names, coordinate_names, file)
    values = coordinate_values_si(model, coordinates)
    missing = [c for c in coordinate_names if c not in values]
    if missing:
        raise MuscleAnalysisError(describe(file, f"coordinates {', '.join(missing)} are not in "
                                           "the kinematics", "use the IK output of this model"))
    check_coordinate_ranges(model, values, file=file, error_cls=MuscleAnalysisError)
    state = model.initSystem()
    couplers = _Couplers(model)
    coords = model.getCoordinateSet()
    n_q = state.getNQ()
    q_index = _q_indices(model, state)
    fast = (state.getNU() == n_q and not couplers.other_constraints
            and not (set(coordinate_names) & couplers.dependents))
    if not fast:
        log.warning("model has quaternions or non-coupler constraints (%s): using "
                    "Muscle.computeMomentArm (slower)", ", ".join(couplers.other_constraints))
    muscles = model.getMuscles()
    paths = [muscles.get(name).getGeometryPath() for name in mtu_names]
    muscle_objs = [muscles.get(name) for name in mtu_names]
    coord_objs = [coords.get(name) for name in coordinate_names]
    n_t, n_m, n_d = len(coordinates.time_s), len(mtu_names), len(coordinate_names)
    lengths = np.empty((n_m, n_t))
    arms = np.zeros((n_m, n_d, n_t))
    q_default = np.array([state.getQ().get(i) for i in range(n_q)])
    q_all = np.tile(q_default, (n_t, 1))
    for name, column in values.items():
        q_all[:, q_index[name]] = column
    for dep, independent, function in couplers.items:
        if dep in values:
            log.debug("%s: recomputing dependent coordinate %s from its constraint", file, dep)
        for k in range(n_t):
            x = osim.Vector([float(q_all[k, q_index[c]]) for c in independent])
            q_all[k, q_index[dep]] = function.calcValue(x)

    def set_frame(k: int) -> None:
        state.setQ(osim.Vector.createFromMat(q_all[k]))
        model.realizePosition(state)

    def unit_speeds(k: int, j: int) -> np.ndarray:
        u = np.zeros(n_q)
        name = coordinate_names[j]
        u[q_index[name]] = 1.0
        for dep, independent, function in couplers.items:
            if name in independent:
                x = osim.Vector([float(q_all[k, q_index[c]]) for c in independent])
                # A plain list, not osim.StdVectorInt: passing that SWIG vector here corrupts
                # ezc3d's own std::vector<int> wrapper for the rest of the process.
                u[q_index[dep]] = function.calcDerivative([independent.index(name)], x)
        return u

    def frame_arms(k: int, pairs: list[list[int]]) -> None:
        for j, crossing in enumerate(pairs):
            if not crossing:
                continue
            if fast:
                state.setU(osim.Vector.createFromMat(unit_speeds(k, j)))
                model.realizeVelocity(state)
                for i in crossing:
                    arms[i, j, k] = -paths[i].getLengtheningSpeed(state)
            else:
                for i in crossing:
                    arms[i, j, k] = muscle_objs[i].computeMomentArm(state, coord_objs[j])

    # Which MTUs cross which coordinate: evaluate all pairs on a few sample frames.
    everything = [list(range(n_m)) for _ in range(n_d)]
    samples = np.unique(np.linspace(0, n_t - 1, min(N_SAMPLE_FRAMES, n_t)).astype(int))
    for k in samples:
        set_frame(int(k))
        frame_arms(int(k), everything)
    crossing_mask = np.abs(arms[:, :, samples]).max(axis=2) > CROSSING_THRESHOLD_M
    pairs = [np.flatnonzero(crossing_mask[:, j]).tolist() for j in range(n_d)]
    arms[:] = 0.0
    for k in range(n_t):
        set_frame(k)
        lengths[:, k] = [path.getLength(state) for path in paths]
        frame_arms(k, pairs)
    return MuscleGeometry(np.array(coordinates.time_s, dtype=float), mtu_names,
                          coordinate_names, lengths, arms)


def _q_indices(model: Any, state: Any) -> dict[str, int]:
    """System Q index of every coordinate (found by moving each coordinate in turn)."""
    import opensim as osim

    coords = model.getCoordinateSet()
    work = osim.State(state)
    base = np.array([work.getQ().get(i) for i in range(work.getNQ())])
    index = {}
    for i in range(coords.getSize()):
        coordinate = coords.get(i)
        original = coordinate.getValue(work)
        locked = coordinate.getLocked(work)
        if locked:  # OpenSim ignores setValue on a locked coordinate
            coordinate.setLocked(work, False)
        coordinate.setValue(work, original + 0.123, False)
        now = np.array([work.getQ().get(k) for k in range(work.getNQ())])
        changed = np.flatnonzero(np.abs(now - base) > 1e-12)
        coordinate.setValue(work, original, False)
        if locked:
            coordinate.setLocked(work, True)
        if len(changed) != 1:
            raise MuscleAnalysisError(describe(None, f"cannot locate coordinate "
                                               f"{coordinate.getName()} in the state",
                                               "report this model to the pipeline developers"))
        index[coordinate.getName()] = int(changed[0])
    return index


def run_muscle_analysis(model_path: str | Path, coordinates_path: str | Path, *,
                        out_dir: str | Path, mtu_names: Sequence[str] | None,
                        coordinate_names: Sequence[str],
                        time_range_s: tuple[float, float] | None = None) -> MuscleGeometry:
    """Compute and write the lengths and moment arms (all muscles when ``mtu_names`` is None)."""
    import opensim as osim

    model_path, coordinates_path = Path(model_path).resolve(), Path(coordinates_path).resolve()
    out_dir = Path(out_dir).resolve()
    model = load_model(model_path, error_cls=MuscleAnalysisError,
                       fix="rerun the scale step (results/<subject>/model/scaled.osim)")
    table = read_sto(coordinates_path, error_cls=MuscleAnalysisError, fix="rerun the IK step",
                     require_rows=True, state_values=True)
    if time_range_s is not None:
        table = table.window(*time_range_s)
        if len(table.time_s) < 2:
            raise MuscleAnalysisError(describe(
                coordinates_path, f"fewer than 2 frames in the time window "
                f"[{time_range_s[0]:g}, {time_range_s[1]:g}] s", "check the trial's start_s/end_s "
                "(or --start-s/--end-s) against the kinematics' time range"))
    names = list(mtu_names) if mtu_names is not None else muscle_names(model)
    geometry = compute_muscle_geometry(model, table, mtu_names=names,
                                       coordinate_names=coordinate_names,
                                       file=coordinates_path)
    with staging_dir(out_dir) as stage:
        files = []
        for j, coord in enumerate(geometry.coordinate_names):
            arm = StoTable(geometry.time_s, geometry.mtu_names,
                           geometry.moment_arm_m[:, j, :].T, name=f"moment_arm_{coord}")
            (stage / moment_arm_name(coord)).write_text(
                format_sto(arm, float_format="%.12g"), encoding="utf-8")
            files.append((stage / moment_arm_name(coord), out_dir / moment_arm_name(coord)))
        length = StoTable(geometry.time_s, geometry.mtu_names, geometry.mtu_length_m.T,
                          name="mtu_length")
        (stage / LENGTH_NAME).write_text(format_sto(length, float_format="%.12g"),
                                         encoding="utf-8")
        tool = osim.AnalyzeTool()
        analysis = osim.MuscleAnalysis()
        analysis.setMuscles(array_str(geometry.mtu_names))
        analysis.setCoordinates(array_str(geometry.coordinate_names))
        analysis.setComputeMoments(True)  # OpenSim writes moment arms only with moments
        tool.getAnalysisSet().cloneAndAppend(analysis)
        tool.setName("muscle_analysis")
        tool.setModelFilename(rel(model_path, out_dir))
        tool.setCoordinatesFileName(rel(coordinates_path, out_dir))
        tool.setInitialTime(float(geometry.time_s[0]))
        tool.setFinalTime(float(geometry.time_s[-1]))
        tool.setResultsDir("opensim_analyze")
        print_setup(tool, stage / SETUP_NAME)
        files.insert(0, (stage / SETUP_NAME, out_dir / SETUP_NAME))
        files.append((stage / LENGTH_NAME, out_dir / LENGTH_NAME))
        publish(files)
    log.info("Muscle analysis of %d MTUs x %d coordinates x %d frames written to %s",
             len(geometry.mtu_names), len(geometry.coordinate_names), len(geometry.time_s),
             out_dir)
    return geometry


def muscle_analysis_files(out_dir: str | Path,
                          coordinate_names: Sequence[str]) -> tuple[Path, dict[str, Path]]:
    """The length file and the moment-arm file per coordinate in ``out_dir``: this project's
    (``mtu_length.sto``, ``moment_arm_<coord>.sto``) or OpenSim AnalyzeTool's MuscleAnalysis
    outputs (``<prefix>_Length.sto``, ``<prefix>_MomentArm_<coord>.sto``)."""
    out_dir = Path(out_dir)
    if (out_dir / LENGTH_NAME).is_file():
        return out_dir / LENGTH_NAME, {c: out_dir / moment_arm_name(c) for c in coordinate_names}
    found = sorted(out_dir.glob("*_Length.sto"))
    if len(found) != 1:
        cause = (f"neither {LENGTH_NAME} nor an OpenSim MuscleAnalysis *_Length.sto" if not found
                 else f"several MuscleAnalysis length files ({', '.join(f.name for f in found)})")
        raise MuscleAnalysisError(describe(out_dir, cause, "rerun the muscle-analysis step, or "
                                           "give one AnalyzeTool MuscleAnalysis result per folder"))
    prefix = found[0].name[: -len("_Length.sto")]
    return found[0], {c: out_dir / f"{prefix}_MomentArm_{c}.sto" for c in coordinate_names}


def read_muscle_analysis(out_dir: str | Path, *,
                         coordinate_names: Sequence[str]) -> MuscleGeometry:
    """Read what :func:`run_muscle_analysis` wrote, or OpenSim's own MuscleAnalysis outputs
    (:func:`muscle_analysis_files`; lengths and moment arms in m)."""
    out_dir = Path(out_dir)
    fix = ("rerun the muscle-analysis step, or run OpenSim's MuscleAnalysis with these "
           "coordinates in its coordinate list")
    length_path, arm_paths = muscle_analysis_files(out_dir, coordinate_names)
    length = read_sto(length_path, error_cls=MuscleAnalysisError, fix=fix, require_rows=True,
                      state_values=True)
    arms = []
    for coord in coordinate_names:
        arm = read_sto(arm_paths[coord], error_cls=MuscleAnalysisError, fix=fix,
                       require_rows=True, state_values=True)
        if len(arm.time_s) != len(length.time_s) or not set(length.labels) <= set(arm.labels):
            raise MuscleAnalysisError(describe(arm_paths[coord],
                                               f"does not match {length_path.name}", fix))
        arms.append(np.column_stack([arm.column(m) for m in length.labels]).T
                    if length.labels else np.zeros((0, len(length.time_s))))
    moment_arm = (np.stack(arms, axis=1) if arms
                  else np.zeros((len(length.labels), 0, len(length.time_s))))
    return MuscleGeometry(length.time_s, length.labels, tuple(coordinate_names),
                          length.data.T, moment_arm)
