"""Solve the excitations with which the true muscles reproduce the inverse-dynamics moments.

The true muscle model is :func:`pipeline.nms.model.simulate` (the model the pipeline calibrates)
with the subject's true parameters. Excitations are optimised through it with torch (so the
activation dynamics, including the electromechanical delay, and the elastic tendon are inverted
exactly as the pipeline will run them forwards):

    minimise  sum_dof mean_t (M_dof - M_ID,dof)^2 / peak_dof^2
              + w_effort mean(e^2) + w_smooth mean((d2e/dt2)^2)

Excitations are per EMG channel (MTUs sharing a channel share its excitation, weighted as in the
config's MTU -> EMG map), ``e = e_min + (1 - e_min) sigmoid(B z)`` with ``B`` a cubic B-spline basis
(knots every ``knot_spacing_s``), so they stay in [0, 1] and are band-limited below the 5 Hz
envelope filter. L-BFGS minimises the loss; what the muscles cannot produce is left as a residual
(reported, and written to ``truth.json``).

Shapes: excitations ``(trial, muscle, time)``, MTU lengths ``(trial, muscle, time)``, moment arms
``(trial, muscle, dof, time)``, moments ``(trial, dof, time)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.nms.model import MuscleParameters, simulate

log = logging.getLogger(__name__)


def bspline_basis(n_time: int, *, dt_s: float, knot_spacing_s: float) -> np.ndarray:
    """Uniform cubic B-spline basis ``(time, knot)`` covering ``n_time`` samples."""
    t = np.arange(n_time) * dt_s
    n_inner = max(int(np.ceil(t[-1] / knot_spacing_s)), 1)
    centres = (np.arange(-1, n_inner + 2)) * knot_spacing_s
    x = (t[:, None] - centres[None, :]) / knot_spacing_s
    ax = np.abs(x)
    return np.where(ax < 1.0, 2.0 / 3.0 - ax**2 + 0.5 * ax**3,
                    np.where(ax < 2.0, (2.0 - ax) ** 3 / 6.0, 0.0))


@dataclass(frozen=True)
class ExcitationSolution:
    """Solved excitations and the moments the muscles make, as numpy arrays (shapes above)."""

    channel_excitation: np.ndarray  # (trial, channel, time)
    excitation: np.ndarray  # (trial, muscle, time)
    moments_nm: np.ndarray  # (trial, dof, time)
    residual_nm: np.ndarray  # (trial, dof, time): target - muscle moments
    relative_rms: np.ndarray  # (trial, dof): RMS(residual) / peak |target|
    iterations: int


def solve_excitations(
    params: MuscleParameters,
    mtu_length_m: np.ndarray,
    moment_arm_m: np.ndarray,
    target_moments_nm: np.ndarray,
    channel_weights: np.ndarray,
    *,
    dt_s: float,
    emd_s: float,
    tendon: str = "elastic",
    knot_spacing_s: float = 0.12,
    effort_weight: float = 2e-4,
    smooth_weight: float = 1e-9,
    min_excitation: float = 0.005,
    max_iterations: int = 300,
) -> ExcitationSolution:
    """Minimum-effort smooth excitations that reproduce ``target_moments_nm``.

    Args:
        channel_weights: ``(muscle, channel)``: excitation of MTU m = sum_c w[m, c] e_c (rows sum
            to 1 for recorded MTUs).
    """
    dtype = torch.float64
    n_trial, n_muscle, n_time = mtu_length_m.shape
    basis = torch.as_tensor(bspline_basis(n_time, dt_s=dt_s, knot_spacing_s=knot_spacing_s),
                            dtype=dtype)
    weights = torch.as_tensor(channel_weights, dtype=dtype)
    lengths = torch.as_tensor(mtu_length_m, dtype=dtype)
    arms = torch.as_tensor(moment_arm_m, dtype=dtype)
    target = torch.as_tensor(target_moments_nm, dtype=dtype)
    peak = target.abs().amax(dim=-1, keepdim=True).clamp_min(1.0)
    params = params.to(dtype=dtype)
    z = torch.full((n_trial, weights.shape[1], basis.shape[1]), -3.0, dtype=dtype,
                   requires_grad=True)

    def excitations(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channel = min_excitation + (1.0 - min_excitation) * torch.sigmoid(z @ basis.T)
        return channel, torch.einsum("mc,tcn->tmn", weights, channel)

    def loss_terms(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channel, exc = excitations(z)
        out = simulate(params, exc, lengths, arms, dt_s=dt_s, tendon=tendon, emd_s=emd_s)
        tracking = (((out.moments_nm - target) / peak) ** 2).mean(dim=-1).sum(dim=-1).mean()
        second = torch.diff(channel, n=2, dim=-1) / dt_s**2
        loss = tracking + effort_weight * (channel**2).mean() + smooth_weight * (
            second**2).mean()
        return loss, tracking

    optimiser = torch.optim.LBFGS([z], lr=1.0, max_iter=max_iterations, history_size=20,
                                  tolerance_grad=1e-10, tolerance_change=1e-14,
                                  line_search_fn="strong_wolfe")
    count = {"n": 0}

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss, _ = loss_terms(z)
        loss.backward()
        count["n"] += 1
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        channel, exc = excitations(z)
        out = simulate(params, exc, lengths, arms, dt_s=dt_s, tendon=tendon, emd_s=emd_s)
    moments = out.moments_nm.numpy()
    residual = target_moments_nm - moments
    rel = np.sqrt(np.mean(residual**2, axis=-1)) / peak.squeeze(-1).numpy()
    log.info("excitations solved in %d evaluations; residual RMS / peak per trial x DOF: %s",
             count["n"], np.array2string(rel, precision=4))
    return ExcitationSolution(channel.numpy(), exc.numpy(), moments, residual, rel, count["n"])
