"""Inverse dynamics: OpenSim's InverseDynamicsTool with the trial's external loads.

The coordinates are low-pass filtered by the tool at ``cutoff_hz``, which must equal the GRF
cut-off (``force_plates.cutoff_hz``) so that kinematics and forces carry the same content
(``opensim.id.cutoff_hz``). Outputs the generalized forces (``.sto``: ``<coord>_moment`` in N*m,
``<coord>_force`` in N), the resolved ``setup_id.xml`` and, when loads are applied, the resolved
``setup_id_external_loads.xml`` beside them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import IDError, describe
from pipeline.io.opensim_files import format_sto, read_sto
from pipeline.osim.coordinates import (
    check_coordinate_ranges,
    consistent_coordinates,
    coordinate_values_si,
)
from pipeline.osim.model_io import load_model
from pipeline.osim.staging import array_str, print_setup, publish, rel, staging_dir, working_dir

log = logging.getLogger(__name__)

SETUP_NAME = "setup_id.xml"
LOADS_NAME = "setup_id_external_loads.xml"
COORDINATES_NAME = "setup_id_coordinates.sto"


def run_inverse_dynamics(
    model_path: str | Path,
    coordinates_path: str | Path,
    *,
    out_sto: str | Path,
    external_loads: str | Path | None = None,
    grf: str | Path | None = None,
    cutoff_hz: float = 6.0,
    time_range_s: tuple[float, float] | None = None,
    setup_template: str | Path | None = None,
    excluded_forces: tuple[str, ...] = ("muscles",),
) -> Path:
    """Run ID of ``coordinates_path`` (IK ``.mot``/``.sto``) and return the output path.

    ``external_loads`` is an ExternalLoads XML; ``grf`` replaces its data file (default: the
    file it names, relative to it). Without ``external_loads`` no loads are applied (models
    without force plates). ``cutoff_hz <= 0`` disables the coordinates' low-pass filter.
    """
    import opensim as osim

    model_path = Path(model_path).resolve()
    coordinates_path, out_sto = Path(coordinates_path).resolve(), Path(out_sto).resolve()
    out_dir = out_sto.parent
    model = load_model(model_path, error_cls=IDError,
                       fix="rerun the scale step (results/<subject>/model/scaled.osim)")
    coordinates = read_sto(coordinates_path, error_cls=IDError, fix="rerun the IK step",
                           require_rows=True, state_values=True)
    values = coordinate_values_si(model, coordinates)
    if not values:
        raise IDError(describe(coordinates_path, "no column names a coordinate of the model "
                               f"{model_path.name}", "use the IK output of the same model"))
    check_coordinate_ranges(model, values, file=coordinates_path, error_cls=IDError)
    consistent, changed = consistent_coordinates(model, coordinates)
    if time_range_s is None:
        time_range_s = (float(coordinates.time_s[0]), float(coordinates.time_s[-1]))

    loads = None
    grf_path: Path | None = None
    keep: list[Any] = [model]
    if external_loads is not None:
        external_loads = Path(external_loads).resolve()
        if not external_loads.is_file():
            raise IDError(describe(external_loads, "external loads file does not exist",
                                   "rerun the C3D stage, or omit --external-loads for a model "
                                   "without force plates"))
        try:
            loads = osim.ExternalLoads(str(external_loads), True)
        except RuntimeError as exc:
            raise IDError(describe(external_loads, f"not a valid ExternalLoads file ({exc})",
                                   "rerun the C3D stage")) from exc
        keep.append(loads)
        if grf is None:
            grf = external_loads.parent / loads.getDataFileName().strip()
        grf_path = Path(grf).resolve()
        if not grf_path.is_file():
            raise IDError(describe(grf_path, "GRF data file does not exist", "rerun the C3D stage"))
        _check_bodies(model, loads, external_loads)

    tool = (osim.InverseDynamicsTool(str(setup_template), False) if setup_template
            else osim.InverseDynamicsTool())
    tool.setName(out_sto.stem)
    tool.setExcludedForces(array_str(excluded_forces))
    tool.setLowpassCutoffFrequency(float(cutoff_hz) if cutoff_hz and cutoff_hz > 0 else -1.0)
    tool.setStartTime(float(time_range_s[0]))
    tool.setEndTime(float(time_range_s[1]))

    with staging_dir(out_dir) as stage:
        moves = []
        if changed:
            # OpenSim's ID reads columns by coordinate name and trusts dependent coordinates:
            # give it the model's coordinates under their names, constraints satisfied.
            log.info("%s: writing the model's coordinates (names, rad, coupled coordinates "
                     "from their constraints) to %s", coordinates_path, COORDINATES_NAME)
            (stage / COORDINATES_NAME).write_text(
                format_sto(consistent, name="coordinates", float_format="%.12g"),
                encoding="utf-8")
            moves.append((stage / COORDINATES_NAME, out_dir / COORDINATES_NAME))
            coordinates_path = out_dir / COORDINATES_NAME
            staged_coordinates = stage / COORDINATES_NAME
        else:
            staged_coordinates = coordinates_path
        _configure(tool, loads, stage, model_path, staged_coordinates, grf_path, out_sto.name,
                   stage)
        log.info("ID of %s with %s (low-pass %s Hz, loads %s)", coordinates_path, model_path,
                 cutoff_hz, external_loads)
        with working_dir(stage):
            staged_tool = osim.InverseDynamicsTool(SETUP_NAME, True)
            keep.append(staged_tool)
            try:
                ok = staged_tool.run()
            except RuntimeError as exc:
                log.error("InverseDynamicsTool: %s", exc)
                ok = False
        staged_sto = stage / out_sto.name
        if not ok or not staged_sto.is_file():
            raise IDError(describe(coordinates_path, "OpenSim's InverseDynamicsTool failed "
                                   "(see the OpenSim messages in the log)",
                                   "check that the external loads name bodies of the model and "
                                   "that the GRF and kinematics overlap in time"))
        _crop(staged_sto, time_range_s)
        result = read_sto(staged_sto, error_cls=IDError, require_rows=True, state_values=True)
        if not np.all(np.isfinite(result.data)):
            raise IDError(describe(coordinates_path, "inverse dynamics produced NaN or inf",
                                   "check the kinematics and GRF for gaps"))
        _configure(tool, loads, out_dir, model_path, coordinates_path, grf_path, out_sto.name,
                   stage, "final_")
        moves += [(stage / f"final_{SETUP_NAME}", out_dir / SETUP_NAME), (staged_sto, out_sto)]
        if loads is not None:
            moves.insert(0, (stage / f"final_{LOADS_NAME}", out_dir / LOADS_NAME))
        publish(moves)
    log.info("ID moments written to %s", out_sto)
    return out_sto


def _configure(tool: Any, loads: Any, setup_dir: Path, model_path: Path,
               coordinates_path: Path, grf: Path | None, sto_name: str,
               write_dir: Path, prefix: str = "") -> None:
    """Write the setup (and its external loads) into ``write_dir`` with paths relative to
    ``setup_dir``, where they will live."""
    tool.setModelFileName(rel(model_path, setup_dir))
    tool.setCoordinatesFileName(rel(coordinates_path, setup_dir))
    tool.setResultsDir(".")
    tool.setOutputGenForceFileName(sto_name)
    if loads is not None and grf is not None:
        loads.setDataFileName(rel(grf, setup_dir))
        print_setup(loads, write_dir / f"{prefix}{LOADS_NAME}")
        tool.setExternalLoadsFileName(LOADS_NAME)
    else:
        tool.setExternalLoadsFileName("")
    print_setup(tool, write_dir / f"{prefix}{SETUP_NAME}")


def _check_bodies(model: Any, loads: Any, file: Path) -> None:
    bodies = model.getBodySet()
    missing = []
    for i in range(loads.getSize()):
        body = loads.get(i).get_applied_to_body()
        if not bodies.contains(body):
            missing.append(body)
    if missing:
        raise IDError(describe(file, f"external loads are applied to bodies the model lacks: "
                               f"{', '.join(missing)}",
                               "name the model's foot bodies in models.<model>.foot_bodies "
                               "(right: ..., left: ...) in config.yaml"))


def _crop(sto: Path, time_range_s: tuple[float, float], *, tol_s: float = 1e-4) -> None:
    """Drop rows outside the kinematics' time range: with a low-pass, OpenSim's ID resamples
    the coordinates and can start one frame before a start time that is not at t = 0."""
    import opensim as osim

    table = read_sto(sto, error_cls=IDError, require_rows=True, state_values=True)
    t = np.asarray(table.time_s)
    outside = (t < time_range_s[0] - tol_s) | (t > time_range_s[1] + tol_s)
    if not outside.any():
        return
    storage = osim.Storage(str(sto))
    inside = t[~outside]
    storage.crop(float(inside[0]), float(inside[-1]))
    storage.printResult(storage, sto.stem, str(sto.parent), -1.0, sto.suffix)
    log.info("%s: %d row(s) outside the kinematics' time range [%.4f, %.4f] s dropped", sto.name,
             int(outside.sum()), *time_range_s)
