"""Catch a wrong ``lab_frame`` from the markers themselves (after rotation to OpenSim's frame).

- Up: a person's markers spread more along the vertical than along either horizontal axis
  (head to feet ~1.5 m, shoulder width ~0.4 m) and the body's middle is above the floor. When
  another axis is taller, ``lab_frame.y`` is not the lab's up axis: an error naming that axis.
  Marker sets smaller than ``min_height_m`` along every axis (a few markers on one segment, a
  calibration object) say nothing about the up axis and are not checked.
- Walking direction: in a trial whose markers' centre travels more than ``min_travel_m``
  horizontally, OpenSim's X should be the direction of travel. When most of the travel is along
  Z, ``lab_frame.x`` is the lab's side-to-side axis: a warning with the lab axis to use.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from os import PathLike

import numpy as np

from pipeline.errors import ConfigError, describe
from pipeline.signals.frames import lab_to_opensim

log = logging.getLogger(__name__)

NAMES = ("x", "y", "z")


def _lab_axis(lab_frame: Mapping[str, str], opensim_axis: int, sign: float) -> str:
    """The signed lab axis that lies along ``sign`` * OpenSim axis ``opensim_axis``."""
    row = lab_to_opensim(lab_frame)[opensim_axis] * sign
    k = int(np.argmax(np.abs(row)))
    return ("+" if row[k] > 0 else "-") + NAMES[k]


def check_lab_frame(xyz_m: np.ndarray, /, *, lab_frame: Mapping[str, str],
                    file: str | PathLike[str] | None = None,
                    min_travel_m: float = 0.5, min_height_m: float = 0.5) -> dict[str, object]:
    """Check ``xyz_m`` (frame, marker, 3; OpenSim frame, NaN when missing); return what was
    found (``travel_m``: centre displacement along X, Y, Z; ``direction``: +x, -x or none)."""
    xyz = np.asarray(xyz_m, dtype=float)
    mean_pos = np.nanmean(xyz, axis=0)  # per marker over time
    if not np.isfinite(mean_pos).any():
        return {"direction": "none"}
    spread = np.nanmax(mean_pos, axis=0) - np.nanmin(mean_pos, axis=0)
    tallest = int(np.nanargmax(spread))
    if (tallest != 1 and spread[tallest] > 1.5 * spread[1] and spread[tallest] > min_height_m
            and np.isfinite(spread).all()):
        up = _lab_axis(lab_frame, tallest, 1.0 if np.nanmean(mean_pos[:, tallest]) > 0 else -1.0)
        raise ConfigError(describe(
            file, f"the markers spread {spread[tallest]:.2f} m along OpenSim {NAMES[tallest]} "
            f"but only {spread[1]:.2f} m along OpenSim y (up): lab_frame "
            f"{dict(lab_frame)} does not make the lab's up axis OpenSim's y (the lab's up "
            f"axis looks like {up})",
            f"set lab_frame.y to the lab's up axis ({up} if the subject stands upright) and "
            "see README 'Finding lab_frame'"))
    centre = np.nanmean(xyz, axis=1)  # per frame
    valid = np.isfinite(centre).all(axis=1)
    result: dict[str, object] = {"direction": "none"}
    if valid.sum() < 2:
        return result
    first, last = centre[valid][0], centre[valid][-1]
    travel = last - first
    result["travel_m"] = [float(v) for v in travel]
    horizontal = np.hypot(travel[0], travel[2])
    if horizontal < min_travel_m:
        return result
    if abs(travel[2]) > abs(travel[0]):
        along = _lab_axis(lab_frame, 2, float(np.sign(travel[2])))
        log.warning("%s", describe(
            file, f"the subject travels {travel[2]:+.2f} m along OpenSim z (right) and "
            f"{travel[0]:+.2f} m along x (forward): lab_frame {dict(lab_frame)} puts the "
            f"walking direction on the subject's side axis (lab {along})",
            f"set lab_frame.x to \"{along}\" (and z to keep the frame right-handed, see README "
            "'Finding lab_frame'); joint angles and moments are wrong otherwise"))
        result["direction"] = "z"
        return result
    result["direction"] = "+x" if travel[0] > 0 else "-x"
    if travel[0] < 0:
        log.info("%s: the subject walks towards OpenSim -x (lab %s); OpenSim handles it, but "
                 "lab_frame.x = \"%s\" makes +x the walking direction", file,
                 _lab_axis(lab_frame, 0, -1.0), _lab_axis(lab_frame, 0, -1.0))
    return result
