"""Model coordinates in a table: SI units, coupler constraints, clamped ranges."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError, describe
from pipeline.io.opensim_files import StoTable


def coordinate_values_si(model: Any, table: StoTable) -> dict[str, np.ndarray]:
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


def consistent_coordinates(model: Any, table: StoTable) -> tuple[StoTable, bool]:
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
    return StoTable(table.time_s, tuple(values), data), changed


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
