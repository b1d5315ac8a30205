"""Synthetic reference problems with known parameters, for benchmarks and parameter recovery.

:func:`make_reference_problem` builds an upper-limb-like problem (default: 16 MTUs, 3 DOFs,
3 trials of 500 samples at 100 Hz): smooth joint angles, moment arms that vary with the angle and
MTU lengths that are exactly consistent with them (``r = -dl_mt/dq``), smooth excitations in
[0, 1], plausible muscle parameters, and the joint moments the model produces with those true
parameters.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from pipeline.nms.model import DEFAULT_EMD_S, ModelOutput, MuscleParameters, TendonModel, simulate

__all__ = ["ReferenceProblem", "make_reference_problem"]

log = logging.getLogger(__name__)

_MOMENT_ARM_VARIATION = 0.2


@dataclasses.dataclass(frozen=True)
class ReferenceProblem:
    """A synthetic problem and its truth. Signals are ``(trial, muscle[, dof], time)``."""

    params: MuscleParameters
    excitation: torch.Tensor  #: (trial, muscle, time)
    mtu_length_m: torch.Tensor  #: (trial, muscle, time)
    moment_arm_m: torch.Tensor  #: (trial, muscle, dof, time)
    joint_angle_rad: torch.Tensor  #: (trial, dof, time)
    moments_nm: torch.Tensor  #: (trial, dof, time), produced by the true parameters
    output: ModelOutput  #: every intermediate of the true model
    dt_s: float
    emd_s: float
    tendon: TendonModel


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], *, dt_s: float,
                  width_s: float) -> np.ndarray:
    """Unit-variance Gaussian-smoothed white noise along the last axis."""
    n_time = shape[-1]
    pad = int(4 * width_s / dt_s)
    white = rng.standard_normal((*shape[:-1], n_time + 2 * pad))
    offsets = np.arange(-pad, pad + 1) * dt_s
    kernel = np.exp(-0.5 * (offsets / width_s) ** 2)
    kernel /= kernel.sum()
    smooth = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="valid"), -1, white)
    smooth = smooth[..., :n_time]
    return (smooth - smooth.mean(axis=-1, keepdims=True)) / smooth.std(axis=-1, keepdims=True)


def make_reference_problem(
    *,
    n_mtus: int = 16,
    n_dofs: int = 3,
    n_trials: int = 3,
    n_samples: int = 500,
    dt_s: float = 0.01,
    emd_s: float = DEFAULT_EMD_S,
    tendon: TendonModel = "elastic",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> ReferenceProblem:
    """Build a synthetic problem with known parameters and the moments they produce.

    Muscle ``m`` crosses DOF ``m % n_dofs`` (every third muscle also the next DOF), alternately as
    flexor and extensor. Moment arms ``r(q) = r0 (1 + 0.2 cos(q - q_mid))`` and MTU lengths
    ``l_mt = L - r0 (q - q_mid + 0.2 sin(q - q_mid))`` are mutually consistent. The MTU length at
    mid-posture puts the fibre near its optimal length with a small tendon strain, and the angle
    ranges keep normalised fibre lengths inside about [0.6, 1.4].
    """
    rng = np.random.default_rng(seed)
    optimal = rng.uniform(0.06, 0.16, n_mtus)
    slack = rng.uniform(0.08, 0.24, n_mtus)
    pennation = rng.uniform(0.0, 0.35, n_mtus)
    truth = {
        "c1": rng.uniform(-0.8, -0.4, n_mtus),
        "c2": rng.uniform(-0.8, -0.4, n_mtus),
        "shape_factor": rng.uniform(-2.0, -0.5, n_mtus),
        "optimal_fiber_length_m": optimal,
        "tendon_slack_length_m": slack,
        "strength": rng.uniform(0.8, 1.4, n_mtus),
        "damping": np.full(n_mtus, 0.01),
        "max_isometric_force_n": rng.uniform(200.0, 1200.0, n_mtus),
        "pennation_at_optimal_rad": pennation,
    }

    crosses = np.zeros((n_mtus, n_dofs))
    for m in range(n_mtus):
        sign = 1.0 if (m // n_dofs) % 2 == 0 else -1.0
        crosses[m, m % n_dofs] = sign
        if m % 3 == 2 and n_dofs > 1:
            crosses[m, (m + 1) % n_dofs] = sign
    # Moment arm scaled to the fibre so the excursion stays within ~ +-0.35 l0 per DOF.
    r0 = crosses * (optimal * rng.uniform(0.25, 0.4, n_mtus))[:, None]

    q_mid = rng.uniform(0.3, 1.2, n_dofs)
    angle = q_mid[None, :, None] + 0.45 * np.tanh(
        _smooth_noise(rng, (n_trials, n_dofs, n_samples), dt_s=dt_s, width_s=0.25)
    )
    dq = angle - q_mid[None, :, None]
    moment_arm = r0[None, :, :, None] * (1.0 + _MOMENT_ARM_VARIATION * np.cos(dq))[:, None]
    excursion = np.einsum("md,tdn->tmn", r0, dq + _MOMENT_ARM_VARIATION * np.sin(dq))

    norm_length_mid = rng.uniform(0.9, 1.05, n_mtus)
    fiber_mid = norm_length_mid * optimal
    along_tendon_mid = np.sqrt(fiber_mid**2 - (optimal * np.sin(pennation)) ** 2)
    mtu_mid = slack * 1.01 + along_tendon_mid
    mtu_length = mtu_mid[None, :, None] - excursion

    drive = _smooth_noise(rng, (n_trials, n_mtus, n_samples), dt_s=dt_s, width_s=0.12)
    excitation = 0.02 + 0.75 / (1.0 + np.exp(-(1.8 * drive - 1.0)))

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=dtype, device=device)

    params = MuscleParameters(**{name: tensor(value) for name, value in truth.items()})
    signals: dict[str, torch.Tensor] = {
        "excitation": tensor(excitation),
        "mtu_length_m": tensor(mtu_length),
        "moment_arm_m": tensor(moment_arm),
    }
    with torch.no_grad():
        output = simulate(params, signals["excitation"], signals["mtu_length_m"],
                          signals["moment_arm_m"], dt_s=dt_s, tendon=tendon, emd_s=emd_s)
    norm = output.normalized_fiber_length
    low, high = float(norm.min()), float(norm.max())
    if low < 0.5 or high > 1.5:
        log.warning("reference problem (seed %d): normalised fibre length spans [%.2f, %.2f], "
                    "outside [0.5, 1.5]", seed, low, high)
    return ReferenceProblem(
        params=params,
        **signals,
        joint_angle_rad=tensor(angle),
        moments_nm=output.moments_nm,
        output=output,
        dt_s=dt_s,
        emd_s=emd_s,
        tendon=tendon,
    )
