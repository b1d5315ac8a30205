"""One function per OpenSim tool, plus the helpers they share.

The public API lives in small modules and is re-exported here (lazily, so that importing this
module does not import every tool):

=========================  ==========================================================
function                   module
=========================  ==========================================================
``scale_model``            :mod:`pipeline.osim.scale` (ScaleTool + marker placement)
``run_inverse_kinematics`` :mod:`pipeline.osim.ik` (InverseKinematicsTool)
``run_inverse_dynamics``   :mod:`pipeline.osim.inverse_dynamics` (InverseDynamicsTool)
``run_muscle_analysis``    :mod:`pipeline.osim.muscle_analysis` (MTU lengths, moment arms)
``collect_nms_trial``      :mod:`pipeline.osim.collect` (one NMS input file per trial)
=========================  ==========================================================

Every tool follows the same steps (opencap / AddBiomechanics pattern): load a setup template (or
build a default one); set the model, inputs, time range and outputs; write the resolved setup XML
beside the outputs with paths relative to it, so ``opensim-cmd run-tool <setup>`` reruns the
step; run the tool from that setup in a staging folder and check the returned boolean; check a
post-condition; then move the outputs into place (the declared outputs last), so a failed step
never leaves a partial output behind.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ModelError, PipelineError, describe
from pipeline.fileio import atomic_path

log = logging.getLogger(__name__)

_EXPORTS = {
    "scale_model": "scale",
    "ScaleResult": "scale",
    "run_inverse_kinematics": "ik",
    "IKResult": "ik",
    "run_inverse_dynamics": "inverse_dynamics",
    "run_muscle_analysis": "muscle_analysis",
    "compute_muscle_geometry": "muscle_analysis",
    "read_muscle_analysis": "muscle_analysis",
    "MuscleGeometry": "muscle_analysis",
    "collect_nms_trial": "collect",
    "analysis_window": "collect",
}

__all__ = [
    "Table",
    "check_coordinate_ranges",
    "coordinate_values_si",
    "load_model",
    "read_table",
    "staging_dir",
    "write_table",
    *_EXPORTS,
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"pipeline.osim.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# Models


def load_model(path: str | Path, *, error_cls: type[PipelineError] = ModelError,
               fix: str | None = None) -> Any:
    """Load an ``.osim`` file and initialise its system; raise ``error_cls`` with a fix if not.

    Keep a Python reference to the returned model for as long as anything uses it.
    """
    import opensim as osim

    path = Path(path)
    fix = fix or ("check the path, or delete the file and rerun the step that writes it "
                  "(the scale step for results/<subject>/model/scaled.osim)")
    if not path.is_file():
        raise error_cls(describe(path, "model file does not exist", fix))
    try:
        model = osim.Model(str(path))
        model.initSystem()
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise error_cls(describe(path, f"not a valid OpenSim model ({first})", fix)) from exc
    return model


def muscle_names(model: Any) -> list[str]:
    muscles = model.getMuscles()
    return [muscles.get(i).getName() for i in range(muscles.getSize())]


def coordinate_names(model: Any) -> list[str]:
    coords = model.getCoordinateSet()
    return [coords.get(i).getName() for i in range(coords.getSize())]


# --------------------------------------------------------------------------------------------
# Tables (.sto / .mot), read with OpenSim's own Storage so that old SIMM-style headers work too


@dataclass(frozen=True)
class Table:
    """A time series: ``data`` has shape (time, column); angles as in the file (``in_degrees``)."""

    time_s: np.ndarray
    labels: tuple[str, ...]
    data: np.ndarray
    in_degrees: bool = False

    def column(self, label: str) -> np.ndarray:
        return self.data[:, self.labels.index(label)]

    def window(self, t0_s: float, t1_s: float) -> Table:
        keep = (self.time_s >= t0_s - 1e-9) & (self.time_s <= t1_s + 1e-9)
        return Table(self.time_s[keep], self.labels, self.data[keep], self.in_degrees)


def _coordinate_label(label: str) -> str:
    """``/jointset/hip_r/hip_flexion_r/value`` -> ``hip_flexion_r``; other labels unchanged."""
    if label.startswith("/") and label.endswith("/value"):
        return label.rsplit("/", 2)[-2]
    return label


def read_table(path: str | Path, *, error_cls: type[PipelineError] = PipelineError,
               fix: str = "rerun the step that writes it") -> Table:
    """Read a ``.sto``/``.mot`` file. State-path labels (``.../<coord>/value``) become names."""
    import opensim as osim

    path = Path(path)
    if not path.is_file():
        raise error_cls(describe(path, "file does not exist", fix))
    try:
        storage = osim.Storage(str(path))
        labels_os = storage.getColumnLabels()
        labels = [labels_os.get(i) for i in range(labels_os.getSize())]
        n_rows, n_cols = storage.getSize(), len(labels) - 1
        time_s = np.empty(n_rows)
        data = np.empty((n_rows, n_cols))
        for i in range(n_rows):
            row = storage.getStateVector(i)
            time_s[i] = row.getTime()
            values = row.getData()
            data[i] = [values.get(j) for j in range(n_cols)]
        in_degrees = bool(storage.isInDegrees())
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise error_cls(describe(path, f"cannot be read as a .sto/.mot table ({first})",
                                 fix)) from exc
    if n_rows == 0:
        raise error_cls(describe(path, "table has no rows", fix))
    names = [_coordinate_label(lab) for lab in labels[1:]]
    keep = [i for i, lab in enumerate(labels[1:]) if not lab.endswith(("/speed", "/activation",
                                                                       "/fiber_length"))]
    return Table(time_s, tuple(names[i] for i in keep), data[:, keep], in_degrees)


def format_table(table: Table, *, name: str = "table") -> str:
    """Text of a version-1 ``.sto`` file for ``table``."""
    n_rows, n_cols = table.data.shape
    header = (f"{name}\nversion=1\nnRows={n_rows}\nnColumns={n_cols + 1}\n"
              f"inDegrees={'yes' if table.in_degrees else 'no'}\nendheader\n")
    buffer = io.StringIO()
    buffer.write(header)
    buffer.write("\t".join(("time", *table.labels)) + "\n")
    np.savetxt(buffer, np.column_stack([table.time_s, table.data]), fmt="%.12g",
               delimiter="\t")
    return buffer.getvalue()


def write_table(path: str | Path, table: Table, *, name: str | None = None) -> None:
    """Write ``table`` as a ``.sto`` file atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(format_table(table, name=name or path.stem), encoding="utf-8")


def coordinate_values_si(model: Any, table: Table) -> dict[str, np.ndarray]:
    """Model coordinates found in ``table``, in rad or m (degrees converted per motion type)."""
    import opensim as osim

    coords = model.getCoordinateSet()
    values: dict[str, np.ndarray] = {}
    for name in table.labels:
        if not coords.contains(name):
            continue
        column = np.array(table.column(name), dtype=float)
        coordinate = coords.get(name)
        if table.in_degrees and coordinate.getMotionType() == osim.Coordinate.Rotational:
            column = np.deg2rad(column)
        values[name] = column
    return values


def coupler_dependents(model: Any) -> list[tuple[str, list[str], Any]]:
    """Enforced CoordinateCouplerConstraints: (dependent, independents, function)."""
    import opensim as osim

    items = []
    constraints = model.getConstraintSet()
    for i in range(constraints.getSize()):
        coupler = osim.CoordinateCouplerConstraint.safeDownCast(constraints.get(i))
        if coupler is None or not coupler.isEnforced(model.getWorkingState()):
            continue
        names = coupler.getIndependentCoordinateNames()
        items.append((coupler.getDependentCoordinateName(),
                      [names.get(k) for k in range(names.getSize())], coupler.getFunction()))
    return items


def consistent_coordinates(model: Any, table: Table) -> tuple[Table, bool]:
    """The model's coordinates in ``table`` in SI units under their own names, with the dependent
    coordinates of coupler constraints recomputed from their constraint; and whether this
    differs from ``table`` in what OpenSim would read (state-path labels, other columns, or
    inconsistent dependents; degrees alone are fine, OpenSim honours ``inDegrees``)."""
    import opensim as osim

    values = coordinate_values_si(model, table)
    changed = list(values) != list(table.labels)
    for dep, independent, function in coupler_dependents(model):
        if not all(c in values for c in independent):
            continue
        computed = np.array([function.calcValue(osim.Vector([float(values[c][k])
                                                             for c in independent]))
                             for k in range(len(table.time_s))])
        if dep not in values or not np.allclose(values[dep], computed, atol=1e-6):
            changed = True
        values[dep] = computed
    data = np.column_stack(list(values.values())) if values else np.empty((len(table.time_s), 0))
    return Table(table.time_s, tuple(values), data, False), changed


def check_coordinate_ranges(model: Any, values: dict[str, np.ndarray], *, file: str | Path,
                            error_cls: type[PipelineError], tolerance: float = 1e-6) -> None:
    """Raise when a clamped coordinate leaves its range (OpenSim would silently clamp it)."""
    import opensim as osim

    coords = model.getCoordinateSet()
    problems = []
    for name, column in values.items():
        coordinate = coords.get(name)
        if not coordinate.getDefaultClamped():
            continue
        low, high = coordinate.getRangeMin(), coordinate.getRangeMax()
        lo_seen, hi_seen = float(np.nanmin(column)), float(np.nanmax(column))
        if lo_seen < low - tolerance or hi_seen > high + tolerance:
            rotational = coordinate.getMotionType() == osim.Coordinate.Rotational
            scale, unit = (180.0 / math.pi, "deg") if rotational else (1.0, "m")
            problems.append(f"{name} spans [{lo_seen * scale:.4g}, {hi_seen * scale:.4g}] {unit} "
                            f"outside its clamped range [{low * scale:.4g}, {high * scale:.4g}]")
    if problems:
        raise error_cls(describe(
            file, "coordinate values outside the model's clamped ranges: " + "; ".join(problems),
            "check the kinematics (IK marker errors, marker labels), or widen the range or set "
            "<clamped>false</clamped> for that coordinate in the model"))


# --------------------------------------------------------------------------------------------
# Setup files and staging


def rel(path: str | Path, start: str | Path) -> str:
    """``path`` relative to the folder ``start`` (how setup files refer to their files)."""
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


@contextlib.contextmanager
def staging_dir(out_dir: str | Path) -> Iterator[Path]:
    """A temporary folder inside ``out_dir`` for a tool's outputs; removed afterwards."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".stage-", dir=out_dir))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def working_dir(path: str | Path) -> Iterator[None]:
    """Run a tool from its setup's folder (what ``cd <folder> && opensim-cmd run-tool`` does):
    some tools resolve relative file names against the working directory."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def publish(files: Sequence[tuple[Path, Path]]) -> None:
    """Move staged files onto their targets in order (put the declared outputs last)."""
    for staged, target in files:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)


def print_setup(tool: Any, target: Path) -> None:
    """Write a tool's setup XML atomically."""
    with atomic_path(target) as tmp:
        if not tool.printToXML(str(tmp)):
            raise OSError(f"OpenSim could not write {target}")


def array_str(values: Sequence[str]) -> Any:
    import opensim as osim

    array = osim.ArrayStr()
    for value in values:
        array.append(value)
    return array


def array_double(values: Sequence[float]) -> Any:
    import opensim as osim

    array = osim.ArrayDouble()
    for value in values:
        array.append(float(value))
    return array
