"""Musculotendon force from fibre state: Hill-type fibre with constant-thickness pennation.

    F = Fmax s (fa(l~) fv(v~) a + fp(l~) + d v~) cos(phi),
    sin(phi) = l0 sin(phi0) / l,  l~ = l / l0,  v~ = v / (vmax l0),  vmax = 10 / s.

Tensors are ``(..., muscle, time)``; per-muscle parameters are ``(muscle,)`` and broadcast over
time (and over any leading trial dimensions).
"""

from __future__ import annotations

import torch

from pipeline.nms import curves

__all__ = [
    "cos_pennation",
    "fiber_force_along_tendon",
    "normalized_fiber_velocity",
    "time_derivative",
]


def _per_muscle(value: torch.Tensor) -> torch.Tensor:
    return value.unsqueeze(-1)


def cos_pennation(
    fiber_length_m: torch.Tensor,
    *,
    optimal_fiber_length_m: torch.Tensor,
    pennation_at_optimal_rad: torch.Tensor,
) -> torch.Tensor:
    """``cos(phi)`` with constant fibre thickness ``w = l0 sin(phi0)``; needs ``l > w``."""
    thickness = _per_muscle(optimal_fiber_length_m * torch.sin(pennation_at_optimal_rad))
    return torch.sqrt(fiber_length_m**2 - thickness**2) / fiber_length_m


def normalized_fiber_velocity(
    fiber_velocity_mps: torch.Tensor,
    *,
    optimal_fiber_length_m: torch.Tensor,
    max_contraction_velocity_per_s: float = curves.MAX_CONTRACTION_VELOCITY_PER_S,
) -> torch.Tensor:
    """``v~ = v / (vmax l0)``, lengthening positive."""
    return fiber_velocity_mps / _per_muscle(max_contraction_velocity_per_s * optimal_fiber_length_m)


def fiber_force_along_tendon(
    activation: torch.Tensor,
    fiber_length_m: torch.Tensor,
    fiber_velocity_mps: torch.Tensor,
    *,
    optimal_fiber_length_m: torch.Tensor,
    pennation_at_optimal_rad: torch.Tensor,
    max_isometric_force_n: torch.Tensor,
    strength: torch.Tensor,
    damping: torch.Tensor,
) -> torch.Tensor:
    """Fibre force projected on the tendon, ``(..., muscle, time)`` in newtons.

    Args:
        activation, fiber_length_m, fiber_velocity_mps: ``(..., muscle, time)``.
        optimal_fiber_length_m, pennation_at_optimal_rad, max_isometric_force_n, strength,
            damping: ``(muscle,)``. ``damping`` multiplies the normalised fibre velocity.
    """
    norm_length = fiber_length_m / _per_muscle(optimal_fiber_length_m)
    norm_velocity = normalized_fiber_velocity(
        fiber_velocity_mps, optimal_fiber_length_m=optimal_fiber_length_m
    )
    normalized = (
        curves.active_force_length(norm_length) * curves.force_velocity(norm_velocity) * activation
        + curves.passive_force_length(norm_length)
        + _per_muscle(damping) * norm_velocity
    )
    cos_phi = cos_pennation(
        fiber_length_m,
        optimal_fiber_length_m=optimal_fiber_length_m,
        pennation_at_optimal_rad=pennation_at_optimal_rad,
    )
    return _per_muscle(max_isometric_force_n * strength) * normalized * cos_phi


def time_derivative(signal: torch.Tensor, *, dt_s: float) -> torch.Tensor:
    """Second-order finite difference along the last axis (central inside, one-sided at the ends).

    Same stencil as ``numpy.gradient(signal, dt_s, axis=-1, edge_order=2)``; needs >= 3 samples.
    """
    if signal.shape[-1] < 3:
        raise ValueError(f"need >= 3 samples to differentiate in time, got {signal.shape[-1]}")
    inner = (signal[..., 2:] - signal[..., :-2]) / (2.0 * dt_s)
    first = (-3.0 * signal[..., :1] + 4.0 * signal[..., 1:2] - signal[..., 2:3]) / (2.0 * dt_s)
    last = (3.0 * signal[..., -1:] - 4.0 * signal[..., -2:-1] + signal[..., -3:-2]) / (2.0 * dt_s)
    return torch.cat([first, inner, last], dim=-1)
