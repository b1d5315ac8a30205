"""The project's DeGrooteFregly2016 curves as CEINMS ``mtuDefault`` curve points.

CEINMS interpolates each curve with a natural cubic spline through its points and holds the end
values outside them; sampled this densely, its curves follow the project's closed forms within
about 1e-5 over the ranges below, so both tools run the same muscle model.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.nms import curves

#: (first, last, points) sampled for each CEINMS curve.
RANGES = {
    "activeForceLength": (0.0, 2.2, 111),     # normalised fibre length
    "passiveForceLength": (0.0, 2.0, 101),    # normalised fibre length
    "forceVelocity": (-1.0, 1.0, 101),        # normalised fibre velocity (CEINMS clips to +-1)
    "tendonForceStrain": (0.0, 0.1, 51),      # tendon strain (l_t - l_ts) / l_ts
}


def _evaluate(name: str, x: np.ndarray) -> np.ndarray:
    t = torch.as_tensor(x, dtype=torch.float64)
    if name == "activeForceLength":
        y = curves.active_force_length(t)
    elif name == "passiveForceLength":
        y = curves.passive_force_length(t)
    elif name == "forceVelocity":
        y = curves.force_velocity(t)
    else:
        y = curves.tendon_force_length(1.0 + t)
    return y.numpy()


def degroote_curves() -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """``{curve name: (x points, y points)}`` for a CEINMS subject's ``mtuDefault``."""
    out = {}
    for name, (first, last, n) in RANGES.items():
        x = np.linspace(first, last, n)
        y = _evaluate(name, x)
        if name == "tendonForceStrain":
            x, y = np.concatenate([[-1.0], x]), np.concatenate([[0.0], y])  # slack: no force
        out[name] = (tuple(float(v) for v in x), tuple(float(v) for v in y))
    return out
