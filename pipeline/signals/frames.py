"""Lab frame -> OpenSim frame (X forward, Y up, Z right).

``lab_frame`` maps each OpenSim axis to a signed lab axis, e.g. ``{"x": "+x", "y": "+z",
"z": "-y"}``: OpenSim X = lab +x, OpenSim Y = lab +z, OpenSim Z = lab -y.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.errors import ConfigError

_AXES = {"x": 0, "y": 1, "z": 2}


def lab_to_opensim(lab_frame: Mapping[str, str]) -> np.ndarray:
    """Rotation matrix R with ``v_opensim = R @ v_lab``; ConfigError unless proper (det +1)."""
    rotation = np.zeros((3, 3))
    try:
        for row, axis in enumerate(("x", "y", "z")):
            spec = str(lab_frame[axis]).strip().lower()
            sign = -1.0 if spec.startswith("-") else 1.0
            rotation[row, _AXES[spec.lstrip("+-")]] = sign
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"lab_frame {dict(lab_frame)!r} is incomplete or uses an unknown axis. "
                          "Fix: give x, y and z as signed lab axes such as \"+x\", \"-y\"") from exc
    if not np.isclose(np.linalg.det(rotation), 1.0):
        raise ConfigError(f"lab_frame {dict(lab_frame)!r} is not a right-handed rotation (it "
                          "repeats an axis or mirrors the lab). Fix: flip the sign of one axis, "
                          "e.g. x: \"+x\", y: \"+z\", z: \"-y\" for a Z-up lab")
    return rotation


def rotate(vectors: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Apply ``rotation`` to the last axis (length 3) of ``vectors``."""
    return np.asarray(vectors) @ rotation.T


def vertical_axis(lab_frame: Mapping[str, str]) -> np.ndarray:
    """The lab's upward unit vector (lab coordinates): OpenSim's +Y expressed in the lab."""
    return lab_to_opensim(lab_frame)[1].copy()
