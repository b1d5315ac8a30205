"""Which inertial parameters the motion determines: SVD of the stacked regressor.

Joint torques are linear in the inertial parameters, tau = Y(q, qd, qdd) pi. Stacked over many
states, the right singular vectors with non-negligible singular values span the combinations of pi
the data determine (the base parameters); the others change no torque at all and must come from a
prior (the scaled model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Identifiability:
    rank: int
    singular_values: np.ndarray
    basis: np.ndarray  # (rank, n_parameters): orthonormal rows spanning the identifiable space
    identifiable: np.ndarray  # (n_parameters,) bool: the parameter alone is determined
    no_effect: np.ndarray  # (n_parameters,) bool: the parameter changes no torque

    def project(self, pi: np.ndarray) -> np.ndarray:
        """The identifiable part of ``pi`` (coordinates in ``basis``)."""
        return self.basis @ np.asarray(pi)


def identifiability(y: torch.Tensor | np.ndarray, *, rtol: float = 1e-9,
                    column_scale: np.ndarray | None = None) -> Identifiability:
    """Rank and identifiable combinations of a stacked regressor ``y`` (..., n_parameters).

    ``column_scale`` (typical magnitude of each parameter) makes the rank test unit-free; the
    basis is returned in the original parameter units.
    """
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=float)
    y = y.reshape(-1, y.shape[-1])
    scale = np.ones(y.shape[1]) if column_scale is None else np.asarray(column_scale, float)
    _, s, vt = np.linalg.svd(y * scale, full_matrices=False)
    rank = int(np.sum(s > rtol * s[0])) if s.size and s[0] > 0 else 0
    basis_scaled = vt[:rank]
    # back to parameter units: the row space of Y (not Y*scale)
    basis, _ = np.linalg.qr((basis_scaled / scale).T)
    basis = basis[:, :rank].T
    column_norm = np.linalg.norm(y * scale, axis=0)
    no_effect = column_norm <= rtol * (s[0] if s.size else 0)
    residual = 1 - np.sum((basis_scaled.T) ** 2, axis=1)  # |e_j - P e_j|^2 in scaled space
    identifiable = (residual < 1e-6) & ~no_effect
    return Identifiability(rank, s, basis, identifiable, no_effect)
