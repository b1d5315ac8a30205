"""Solve the excitations with which the true muscles reproduce the inverse-dynamics moments.

The true muscle model is :func:`pipeline.nms.model.simulate` (the model the pipeline calibrates)
with the subject's true parameters. Excitations are optimised through it with torch (so the
activation dynamics, including the electromechanical delay, and the elastic tendon are inverted
exactly as the pipeline will run them forwards):

    minimise  sum_dof mean_t (M_dof - M_ID,dof)^2 / peak_dof^2
              + w_target mean((e - e_target)^2) + w_effort mean(e^2) + w_smooth mean((d2e/dt2)^2)

``e_target`` (:func:`target_patterns`) are smooth random patterns, different for every trial and
channel, between 0.03 and 0.3: the subject co-contracts moderately. A pure minimum-effort
solution (no target) gives low, flat excitations that mirror the net moments (agonists only,
antagonists near zero); EMG-envelope noise then dominates and the muscle parameters are not
identifiable from the data. With targets, every muscle works at a useful level with its own time
course, the net moments are still exactly the inverse-dynamics moments, and the
force-length-velocity, tendon and activation nonlinearities are exercised over a range that
calibration can recover.

Excitations are per EMG channel (MTUs sharing a channel share its excitation, weighted as in the
config's MTU -> EMG map), ``e = e_min + (1 - e_min) sigmoid(B z)`` with ``B`` a cubic B-spline basis
(knots every ``knot_spacing_s``, 0.25 s), so they stay in [0, 1] and vary below ~2 Hz, under the
demo's 3 Hz envelope filter. L-BFGS minimises the loss; what the muscles cannot produce is left
as a residual (reported, and written to ``truth.json``).

Shapes: excitations ``(trial, muscle, time)``, MTU lengths ``(trial, muscle, time)``, moment arms
``(trial, muscle, dof, time)``, moments ``(trial, dof, time)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.nms.model import MuscleParameters, TendonModel, simulate

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


def target_patterns(rng: np.random.Generator, shape: tuple[int, int, int], *, dt_s: float,
                    low: float = 0.03, high: float = 0.3, knot_spacing_s: float = 0.5
                    ) -> np.ndarray:
    """Smooth random excitation targets ``(trial, channel, time)`` within ``[low, high]``.

    Each channel has a random level; cubic B-spline coefficients (knots every
    ``knot_spacing_s``) scatter around it, so the patterns are band-limited (< ~1.5 Hz) and
    differ in level and timing across channels and trials. A B-spline is a convex combination of
    its coefficients, so the patterns stay within the coefficients' range.
    """
    n_trial, n_channel, n_time = shape
    basis = bspline_basis(n_time, dt_s=dt_s, knot_spacing_s=knot_spacing_s)
    level = rng.uniform(low, 0.5 * (low + high), (n_trial, n_channel, 1))
    swing = rng.uniform(0.05, 0.5 * (high - low), (n_trial, n_channel, 1))
    coefficients = level + swing * rng.uniform(-1.0, 1.0, (n_trial, n_channel, basis.shape[1]))
    return np.clip(coefficients, low, high) @ basis.T


@dataclass(frozen=True)
class ExcitationSolution:
    """Solved excitations and the moments the muscles make, as numpy arrays (shapes above)."""

    channel_excitation: np.ndarray  # (trial, channel, time)
    excitation: np.ndarray  # (trial, muscle, time)
    moments_nm: np.ndarray  # (trial, dof, time)
    residual_nm: np.ndarray  # (trial, dof, time): target - muscle moments
    relative_rms: np.ndarray  # (trial, dof): RMS(residual) / peak |target|
    iterations: int
    fiber_range: tuple[float, float] = (1.0, 1.0)  # normalised fibre length min, max
    max_tendon_strain: float = 0.0


def solve_excitations(
    params: MuscleParameters,
    mtu_length_m: np.ndarray,
    moment_arm_m: np.ndarray,
    target_moments_nm: np.ndarray,
    channel_weights: np.ndarray,
    *,
    dt_s: float,
    emd_s: float,
    tendon: TendonModel = "elastic",
    knot_spacing_s: float = 0.25,
    effort_weight: float = 2e-4,
    smooth_weight: float = 1e-9,
    min_excitation: float = 0.01,
    max_iterations: int = 300,
    target_excitation: np.ndarray | None = None,
    target_weight: float = 1e-3,
) -> ExcitationSolution:
    """Smooth excitations that reproduce ``target_moments_nm`` with the least effort, or, given
    ``target_excitation`` ``(trial, channel, time)``, as close to it as possible.

    Args:
        channel_weights: ``(muscle, channel)``: excitation of MTU m = sum_c w[m, c] e_c (rows sum
            to 1 for recorded MTUs).
        target_weight: weight of ``mean((e - e_target)^2)`` (small enough that the moments are
            tracked within ~0.1 % of their peak).
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
    goal = None
    z0 = torch.full((n_trial, weights.shape[1], basis.shape[1]), -3.0, dtype=dtype)
    if target_excitation is not None:
        goal = torch.as_tensor(target_excitation, dtype=dtype)
        # start from the target: least-squares spline fit of its logit
        u = ((goal - min_excitation) / (1.0 - min_excitation)).clamp(1e-3, 1 - 1e-3)
        fit = torch.linalg.pinv(basis)  # (knot, time)
        z0 = torch.logit(u) @ fit.T
    z = z0.clone().requires_grad_(True)

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
        if goal is not None:
            loss = loss + target_weight * ((channel - goal) ** 2).mean()
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
    fiber = out.normalized_fiber_length
    return ExcitationSolution(channel.numpy(), exc.numpy(), moments, residual, rel, count["n"],
                              (float(fiber.min()), float(fiber.max())),
                              float(out.tendon_strain.max()))
