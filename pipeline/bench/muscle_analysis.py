"""Benchmark: muscle analysis of 80 MTUs x 5 coordinates x 1000 frames (Rajagopal 2016 model).

Uses the scaled Rajagopal model and ``coordinates.sto`` of opensim-core's example3DWalking
(``../shared/data/opensim-core/rajagopal-walk``), resampled to 1000 frames. Writes
``{"n_mtus", "n_coordinates", "n_frames", "wall_s", "ms_per_frame", "frames_per_s"}`` (written by
``python -m pipeline bench muscle-analysis --json FILE``) and, with
``--compare``, the same for ``Muscle.computeMomentArm`` on a subset of frames (extrapolated) and
the largest difference between the two (m).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, describe

NAME = "muscle-analysis"
HELP = "time MTU lengths + moment arms: 80 MTUs x 5 coordinates x 1000 frames (Rajagopal)"

log = logging.getLogger(__name__)

#: The shared data folder beside a clone, seen from the clone's root (where benchmarks run).
DEFAULT_DATA = Path("..") / "shared" / "data"
COORDINATES = ("hip_flexion_r", "hip_adduction_r", "hip_rotation_r", "knee_angle_r",
               "ankle_angle_r")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=str(DEFAULT_DATA),
                        help="shared data folder holding opensim-core/rajagopal-walk "
                             "(default: ../shared/data)")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--compare", action="store_true",
                        help="also time Muscle.computeMomentArm on 20 frames")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.io.opensim_files import StoTable, read_sto
    from pipeline.osim.model_io import load_model, muscle_names
    from pipeline.osim.muscle_analysis import compute_muscle_geometry

    folder = Path(args.data) / "opensim-core" / "rajagopal-walk"
    if not folder.is_dir():
        raise ConfigError(describe(folder, "benchmark data not found",
                                   "pass --data <folder holding opensim-core/rajagopal-walk>"))
    model = load_model(folder / "subject_walk_scaled.osim")
    source = read_sto(folder / "coordinates.sto", require_rows=True, state_values=True)
    time_s = np.linspace(source.time_s[0], source.time_s[-1], args.frames)
    data = np.column_stack([np.interp(time_s, source.time_s, source.data[:, j])
                            for j in range(source.data.shape[1])])
    table = StoTable(time_s, source.labels, data, in_degrees=source.in_degrees)
    mtus = muscle_names(model)
    start = time.perf_counter()
    geometry = compute_muscle_geometry(model, table, mtu_names=mtus,
                                       coordinate_names=COORDINATES)
    wall_s = time.perf_counter() - start
    result: dict[str, Any] = {
        "model": "Rajagopal 2016 (example3DWalking, subject_walk_scaled.osim)",
        "method": "direct API: one realizePosition per frame, one realizeVelocity per "
                  "coordinate and frame, lengthening speed of crossing MTUs",
        "n_mtus": len(mtus), "n_coordinates": len(COORDINATES), "n_frames": args.frames,
        "crossing_pairs": int((np.abs(geometry.moment_arm_m).max(axis=2) > 0).sum()),
        "wall_s": wall_s, "ms_per_frame": 1000.0 * wall_s / args.frames,
        "frames_per_s": args.frames / wall_s,
    }
    if args.compare:
        result["compute_moment_arm"] = _compare(model, table, geometry, mtus)
    log.info("muscle analysis: %s", json.dumps(result))
    return result


def _compare(model: Any, table: Any, geometry: Any, mtus: list[str]) -> dict[str, Any]:
    """Time ``Muscle.computeMomentArm`` (what MuscleAnalysis uses) on 20 frames."""
    from pipeline.osim.coordinates import coordinate_values_si

    state = model.initSystem()
    coords = model.getCoordinateSet()
    muscles = [model.getMuscles().get(name) for name in mtus]
    coord_objs = [coords.get(name) for name in COORDINATES]
    values = coordinate_values_si(model, table)
    frames = np.linspace(0, len(table.time_s) - 1, 20).astype(int)
    worst = 0.0
    start = time.perf_counter()
    for k in frames:
        for name, column in values.items():
            if not name.endswith("_beta"):
                coords.get(name).setValue(state, float(column[k]), False)
        model.assemble(state)
        model.realizePosition(state)
        arms = np.array([[m.computeMomentArm(state, c) for c in coord_objs] for m in muscles])
        worst = max(worst, float(np.abs(arms - geometry.moment_arm_m[:, :, k]).max()))
    wall_s = time.perf_counter() - start
    per_frame = wall_s / len(frames)
    return {"frames_timed": len(frames), "ms_per_frame": 1000.0 * per_frame,
            "extrapolated_wall_s": per_frame * len(table.time_s),
            "max_abs_difference_m": worst}
