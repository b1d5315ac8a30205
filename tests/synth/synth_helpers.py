"""Helpers shared by the demo-study tests: C3D plates to OpenSim loads, .mot files, ID tool."""

from __future__ import annotations

from pathlib import Path

import ezc3d
import numpy as np
import opensim
from scipy import signal

from pipeline.signals.frames import lab_to_opensim
from pipeline.synth.study import LAB_FRAME

ROTATION = lab_to_opensim(LAB_FRAME)
PLATE_SIDES = {0: "r", 1: "l"}  # plate 1 under the right foot, plate 2 under the left


def write_mot(path: Path, time_s: np.ndarray, columns: dict[str, np.ndarray]) -> Path:
    """A minimal OpenSim .mot (radians, metres, newtons)."""
    names = list(columns)
    lines = [path.name, "version=1", f"nRows={len(time_s)}", f"nColumns={len(names) + 1}",
             "inDegrees=no", "endheader", "\t".join(["time", *names])]
    for i, t in enumerate(time_s):
        lines.append("\t".join(f"{v:.10g}" for v in [t, *(columns[n][i] for n in names)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def plate_loads(c3d_path: Path, *, cutoff_hz: float = 6.0) -> dict[str, dict[str, np.ndarray]]:
    """Ground reaction per foot from ezc3d's platform extraction, OpenSim frame, point rate.

    ezc3d reports the load on the plate (action) in the lab, in N and mm: negate and rotate.
    Like the pipeline, the signals are low-passed (zero-lag, ``cutoff_hz``) to remove the
    plate noise before they are sampled at the marker rate.
    """
    c3d = ezc3d.c3d(str(c3d_path), extract_forceplat_data=True)
    rate = c3d["header"]["analogs"]["frame_rate"]
    ratio = int(round(rate / c3d["header"]["points"]["frame_rate"]))
    sos = signal.butter(4, cutoff_hz, fs=rate, output="sos")

    def smooth(values: np.ndarray) -> np.ndarray:
        return signal.sosfiltfilt(sos, values.T, axis=0)[::ratio]

    out = {}
    for index, platform in enumerate(c3d["data"]["platform"]):
        force = -smooth(platform["force"]) @ ROTATION.T
        cop = smooth(platform["center_of_pressure"]) * 1e-3 @ ROTATION.T
        torque = -smooth(platform["Tz"]) * 1e-3 @ ROTATION.T
        out[PLATE_SIDES[index]] = {"force_n": force, "cop_m": cop, "torque_nm": torque}
    return out


def run_inverse_dynamics(model_path: Path, coordinates_mot: Path, out_dir: Path, *,
                         external_loads: Path | None, end_s: float) -> dict[str, np.ndarray]:
    """OpenSim's InverseDynamicsTool, unfiltered, muscles excluded; columns by coordinate."""
    model = opensim.Model(str(model_path))
    tool = opensim.InverseDynamicsTool()
    tool.setModel(model)
    tool.setCoordinatesFileName(str(coordinates_mot))
    if external_loads is not None:
        tool.setExternalLoadsFileName(str(external_loads))
    tool.setLowpassCutoffFrequency(-1.0)
    tool.setStartTime(0.0)
    tool.setEndTime(end_s)
    tool.setResultsDir(str(out_dir))
    tool.setOutputGenForceFileName("id.sto")
    excluded = opensim.ArrayStr()
    excluded.append("Muscles")
    tool.setExcludedForces(excluded)
    assert tool.run()
    table = opensim.TimeSeriesTable(str(out_dir / "id.sto"))
    return {label.rsplit("_", 1)[0]: table.getDependentColumn(label).to_numpy()
            for label in table.getColumnLabels()}
