"""Write demo C3D files with ezc3d: markers (mm, lab frame), analog EMG and type-2 force plates.

Force plates follow the C3D convention for type-2 (AMTI-like) plates:

* plate axes: x along lab +x, y along lab -y, z down (lab -z); CORNERS (mm, lab frame) are listed
  in the order (+x, +y), (-x, +y), (-x, -y), (+x, -y) of the plate's own axes;
* the channels Fx Fy Fz (N) and Mx My Mz (N mm) are the load the subject applies *to* the plate
  (minus the ground reaction), in plate axes, moments about the transducer origin;
* the transducer origin is ``depth_mm`` below the working surface's centre; ORIGIN, the vector from
  the transducer origin to the centre of the working surface in plate axes, is (0, 0, -depth_mm);
* CAL_MATRIX is zero (only type 4 uses it), ZERO = (1, 0), ANALOG:UNITS "N" and "Nmm".

ezc3d's own platform extraction (``extract_forceplat_data=True``) recovers forces and centre of
pressure from these files; a test checks it against the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import ezc3d
import numpy as np

from pipeline.fileio import atomic_path

log = logging.getLogger(__name__)

#: Plate axes (rows) in lab coordinates: v_plate = PLATE_AXES @ v_lab.
PLATE_AXES = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass(frozen=True)
class Plate:
    """A type-2 force plate: centre of the working surface (lab, mm) and size (mm)."""

    centre_mm: tuple[float, float, float]
    length_x_mm: float = 500.0
    width_y_mm: float = 400.0
    depth_mm: float = 40.0

    @property
    def corners_mm(self) -> np.ndarray:
        """(4, 3) corners in the lab, C3D order."""
        a, b = self.length_x_mm / 2, self.width_y_mm / 2
        local = np.array([[a, b, 0.0], [-a, b, 0.0], [-a, -b, 0.0], [a, -b, 0.0]])
        return np.asarray(self.centre_mm) + local @ PLATE_AXES  # plate -> lab is the transpose

    @property
    def origin_mm(self) -> np.ndarray:
        return np.array([0.0, 0.0, -self.depth_mm])

    def channels(self, grf_lab_n: np.ndarray, cop_lab_mm: np.ndarray,
                 free_moment_lab_nmm: np.ndarray) -> np.ndarray:
        """Fx..Mz ``(sample, 6)`` for a ground reaction (on the foot, lab frame) at a COP."""
        action = -np.asarray(grf_lab_n) @ PLATE_AXES.T
        cop_plate = (np.asarray(cop_lab_mm) - np.asarray(self.centre_mm)) @ PLATE_AXES.T
        sensor = np.array([0.0, 0.0, self.depth_mm])  # plate z points down
        moment = np.cross(cop_plate - sensor, action) - np.asarray(
            free_moment_lab_nmm) @ PLATE_AXES.T
        return np.concatenate([action, moment], axis=1)


@dataclass(frozen=True)
class AnalogChannel:
    label: str
    unit: str
    values: np.ndarray  # (analog sample,)


def _int_parameter(c3d: ezc3d.c3d, group: str, name: str,
                   value: Sequence[int] | np.ndarray) -> None:
    c3d.add_parameter(group, name, np.asarray(value, dtype=float))
    c3d["parameters"][group][name]["type"] = ezc3d.ezc3d.INT


def write_c3d(path: str | Path, *, point_rate_hz: float, markers_mm: Mapping[str, np.ndarray],
              analog_rate_hz: float, analogs: Sequence[AnalogChannel],
              plates: Sequence[tuple[Plate, np.ndarray]] = (),
              missing: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write one C3D file atomically.

    Args:
        markers_mm: name -> ``(frame, 3)`` positions in the lab frame, mm.
        analogs: EMG (or other) channels at ``analog_rate_hz``; the length must be a whole
            multiple of the number of frames.
        plates: (plate, channels ``(sample, 6)`` from :meth:`Plate.channels`), appended after
            ``analogs`` as Fx<i> Fy<i> Fz<i> Mx<i> My<i> Mz<i>.
        missing: name -> boolean ``(frame,)`` mask of occluded samples (written as NaN with
            residual -1).
    """
    names = list(markers_mm)
    n_frames = next(iter(markers_mm.values())).shape[0]
    ratio = int(round(analog_rate_hz / point_rate_hz))
    points = np.ones((4, len(names), n_frames))
    residuals = np.zeros((1, len(names), n_frames))
    for i, name in enumerate(names):
        points[:3, i, :] = np.asarray(markers_mm[name]).T
        if missing and name in missing:
            mask = np.asarray(missing[name], dtype=bool)
            points[:3, i, mask] = np.nan
            residuals[0, i, mask] = -1.0

    channels = list(analogs)
    for k, (_plate, values) in enumerate(plates, start=1):
        for j, comp in enumerate(("Fx", "Fy", "Fz", "Mx", "My", "Mz")):
            channels.append(AnalogChannel(f"{comp}{k}", "N" if j < 3 else "Nmm", values[:, j]))
    n_analog = n_frames * ratio
    data = np.zeros((1, len(channels), n_analog))
    for i, ch in enumerate(channels):
        if ch.values.shape[0] != n_analog:
            raise ValueError(f"analog channel {ch.label} has {ch.values.shape[0]} samples, "
                             f"expected {n_analog}")
        data[0, i] = ch.values

    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [float(point_rate_hz)]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = names
    c3d["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    c3d["parameters"]["ANALOG"]["RATE"]["value"] = [float(analog_rate_hz)]
    c3d["parameters"]["ANALOG"]["LABELS"]["value"] = [ch.label for ch in channels]
    c3d["parameters"]["ANALOG"]["UNITS"]["value"] = [ch.unit for ch in channels]
    c3d["data"]["points"] = points
    c3d["data"]["meta_points"]["residuals"] = residuals
    c3d["data"]["analogs"] = data
    if plates:
        n_plates = len(plates)
        first = len(analogs) + 1
        _int_parameter(c3d, "FORCE_PLATFORM", "USED", [n_plates])
        _int_parameter(c3d, "FORCE_PLATFORM", "TYPE", [2] * n_plates)
        _int_parameter(c3d, "FORCE_PLATFORM", "ZERO", [1, 0])
        c3d.add_parameter("FORCE_PLATFORM", "CORNERS",
                          np.stack([p.corners_mm.T for p, _ in plates], axis=2))
        c3d.add_parameter("FORCE_PLATFORM", "ORIGIN",
                          np.stack([p.origin_mm for p, _ in plates], axis=1))
        channel_table = np.arange(first, first + 6 * n_plates).reshape(n_plates, 6).T
        _int_parameter(c3d, "FORCE_PLATFORM", "CHANNEL", channel_table)
        c3d.add_parameter("FORCE_PLATFORM", "CAL_MATRIX", np.zeros((6, 6, n_plates)))
    path = Path(path)
    with atomic_path(path) as tmp:
        c3d.write(str(tmp))
    return path
