"""Ground reactions that make a free-floating planar motion dynamically consistent.

Inverse dynamics of ``demo-leg`` without external loads leaves generalized forces on the pelvis's
planar joint (``pelvis_tx``, ``pelvis_ty``: forces along ground x and y; ``pelvis_tilt``: moment
about +z through the pelvis origin). Those residuals are exactly the ground reaction the motion
needs, since the pelvis is not actuated. For a wrench applied on the floor (y = 0) with force
``F`` at centre of pressure ``(c_x, 0)`` and free moment ``T`` about +z:

    tau_tx = sum F_x,   tau_ty = sum F_y,
    tau_tilt = sum [(c_x - o_x) F_y + o_y F_x] + sum T_z,   o = pelvis origin.

Symmetric squats split the force 50/50 between the feet, give both feet the same centre of pressure
x (solved from the moment equation) and zero free moment (the model is sagittal; a vertical free
moment cannot act on it). The vertical-axis free moment written to the plates is therefore 0.
Both feet have the same sagittal location, so their COP differ only in z (the foot's lateral
position). :func:`check_residuals` in the tests verifies that ID with these loads leaves ~0 on the
pelvis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FootLoad:
    """Ground reaction on one foot, OpenSim ground frame: force (N), COP (m), free moment (N m).

    All arrays are ``(time, 3)``; the COP is on the floor (y = 0).
    """

    side: str
    force_n: np.ndarray
    cop_m: np.ndarray
    torque_nm: np.ndarray


def split_ground_reaction(pelvis_residuals: dict[str, np.ndarray], *, pelvis_origin_m: np.ndarray,
                          foot_z_m: dict[str, float], share_right: float = 0.5
                          ) -> tuple[FootLoad, FootLoad]:
    """Per-foot loads that cancel the pelvis residuals of a no-load inverse dynamics.

    Args:
        pelvis_residuals: ``pelvis_tx`` (N), ``pelvis_ty`` (N), ``pelvis_tilt`` (N m), (time,).
        pelvis_origin_m: ``(time, 3)`` pelvis origin in ground.
        foot_z_m: lateral COP location per side ("r", "l"), m.
        share_right: fraction of the total force carried by the right foot.

    Returns:
        (right, left) loads.
    """
    fx = np.asarray(pelvis_residuals["pelvis_tx"], dtype=float)
    fy = np.asarray(pelvis_residuals["pelvis_ty"], dtype=float)
    mz = np.asarray(pelvis_residuals["pelvis_tilt"], dtype=float)
    if np.any(fy <= 0.0):
        raise ValueError("the motion needs a downward ground pull (pelvis_ty residual <= 0); "
                         "it cannot be produced by feet on force plates")
    ox, oy = pelvis_origin_m[:, 0], pelvis_origin_m[:, 1]
    cop_x = ox + (mz - oy * fx) / fy
    loads = []
    for side, share in (("r", share_right), ("l", 1.0 - share_right)):
        n = fx.shape[0]
        force = np.stack([share * fx, share * fy, np.zeros(n)], axis=1)
        cop = np.stack([cop_x, np.zeros(n), np.full(n, foot_z_m[side])], axis=1)
        loads.append(FootLoad(side, force, cop, np.zeros((n, 3))))
    return loads[0], loads[1]
