"""Musculotendon force from fibre state: Hill-type fibre with constant-thickness pennation.

    F = Fmax s (fa(l~) fv(v~) a + fp(l~) + d v~) cos(phi),
    sin(phi) = l0 sin(phi0) / l,  l~ = l / l0,  v~ = v / (vmax l0),  vmax = 10 / s.

Tensors are ``(..., muscle, time)``; per-muscle parameters are ``(muscle,)`` and broadcast over
time (and over any leading trial dimensions).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

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

    One fused autograd node (:class:`_FiberForce`) with closed-form partial derivatives, in
    reverse and forward mode: several times fewer tensor operations than autograd through the
    curves, and the same values (a test holds it to the composition of :mod:`curves`).

    Args:
        activation, fiber_length_m, fiber_velocity_mps: ``(..., muscle, time)``.
        optimal_fiber_length_m, pennation_at_optimal_rad, max_isometric_force_n, strength,
            damping: ``(muscle,)``. ``damping`` multiplies the normalised fibre velocity.
    """
    return _FiberForce.apply(activation, fiber_length_m, fiber_velocity_mps,
                             optimal_fiber_length_m, pennation_at_optimal_rad,
                             max_isometric_force_n, strength, damping)


def fiber_force_and_partials(activation: torch.Tensor, fiber_length_m: torch.Tensor,
                             fiber_velocity_mps: torch.Tensor, *,
                             optimal_fiber_length_m: torch.Tensor,
                             pennation_at_optimal_rad: torch.Tensor,
                             max_isometric_force_n: torch.Tensor, strength: torch.Tensor,
                             damping: torch.Tensor, parameters: Sequence[str] = (),
                             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`fiber_force_along_tendon` and its per-sample partial derivatives, outside autograd.

    Returns ``(force, partials)``: ``partials`` has ``activation``, ``fiber_length_m`` and
    ``fiber_velocity_mps``, and each of ``parameters`` (any of ``optimal_fiber_length_m``,
    ``pennation_at_optimal_rad``, ``max_isometric_force_n``, ``strength``, ``damping``): the
    derivative of each sample's force w.r.t. its own muscle's parameter, ``(..., muscle, time)``.
    The formulas are :class:`_FiberForce`'s.
    """
    names = ("optimal_fiber_length_m", "pennation_at_optimal_rad", "max_isometric_force_n",
             "strength", "damping")
    unknown = set(parameters) - set(names)
    if unknown:
        raise ValueError(f"no partials for {sorted(unknown)}; use any of {names}")
    params = [p.unsqueeze(-1) for p in (optimal_fiber_length_m, pennation_at_optimal_rad,
                                        max_isometric_force_n, strength, damping)]
    signals = (activation, fiber_length_m, fiber_velocity_mps)
    ctx = SimpleNamespace(params=params, signals=signals,
                          terms=_force_terms(*signals, *params))
    by_signals = _FiberForce._signal_partials(ctx, 1.0)
    by_params = _FiberForce._parameter_partials(ctx, 1.0, by_signals[1], by_signals[2],
                                                [n in parameters for n in names])
    partials = dict(zip(("activation", "fiber_length_m", "fiber_velocity_mps"), by_signals,
                        strict=True))
    partials.update({n: p for n, p in zip(names, by_params, strict=True) if p is not None})
    return ctx.terms.force, partials


class _ForceTerms(NamedTuple):
    """Per-sample pieces of the fibre force and of its partial derivatives."""

    force: torch.Tensor
    normalized: torch.Tensor  #: N = fa fv a + fp + d v~
    cos_phi: torch.Tensor
    fa_fv: torch.Tensor  #: dN/da
    dn_dlength: torch.Tensor  #: dN/dl~
    dn_dvelocity: torch.Tensor  #: dN/dv~
    dcos_dlength: torch.Tensor  #: d cos(phi) / dl = (1 / cos(phi) - cos(phi)) / l  (m^-1)
    norm_velocity: torch.Tensor


def _force_terms(activation, length, velocity, l0, phi0, fmax, strength, damping) -> _ForceTerms:
    """``F = Fmax s N cos(phi)`` and the pieces its derivatives are made of. Parameters are
    ``(muscle, 1)``."""
    inverse_l0 = 1.0 / l0
    norm_length = length * inverse_l0
    norm_velocity = velocity * (inverse_l0 / curves.MAX_CONTRACTION_VELOCITY_PER_S)
    fa, dfa = curves.active_force_length_and_slope(norm_length)
    fv, dfv = curves.force_velocity_and_slope(norm_velocity)
    fp, dfp = curves.passive_force_length_and_slope(norm_length)
    fa_fv = fa * fv
    normalized = torch.addcmul(fp, fa_fv, activation).addcmul_(damping, norm_velocity)
    thickness = l0 * torch.sin(phi0)
    cos_phi = torch.sqrt(length * length - thickness * thickness).div_(length)
    return _ForceTerms(
        force=normalized * cos_phi * (fmax * strength),
        normalized=normalized, cos_phi=cos_phi, fa_fv=fa_fv,
        dn_dlength=torch.addcmul(dfp, dfa.mul_(fv), activation),
        dn_dvelocity=torch.addcmul(damping, fa.mul_(dfv), activation),
        dcos_dlength=(1.0 / cos_phi).sub_(cos_phi).div_(length),
        norm_velocity=norm_velocity,
    )


class _FiberForce(torch.autograd.Function):
    """``(a, l, v, l0, phi0, Fmax, s, d) -> F``, inputs as :func:`fiber_force_along_tendon`'s
    (parameters ``(muscle,)``); closed-form reverse (``backward``) and forward (``jvp``) rules.

    ``F`` depends on ``l``, ``v`` and ``l0`` only through ``l / l0``, ``v / l0`` and
    ``cos(phi)`` (a function of ``l / l0`` and ``phi0``), so it is unchanged when all three scale
    together, and Euler's theorem gives ``dF/dl0 = -(l dF/dl + v dF/dv) / l0``."""

    @staticmethod
    def forward(ctx, activation, length, velocity, l0, phi0, fmax, strength, damping):
        params = [p.unsqueeze(-1) for p in (l0, phi0, fmax, strength, damping)]
        ctx.params = params
        ctx.signals = (activation, length, velocity)
        # One computation for every use (values agree to the bit with or without gradients).
        ctx.terms = _force_terms(activation, length, velocity, *params)
        return ctx.terms.force

    @staticmethod
    def _signal_partials(ctx, weight):
        """``weight * dF/da, weight * dF/dl, weight * dF/dv`` per sample (``weight``: the
        output's cotangent, or 1)."""
        t = ctx.terms
        l0, _, fmax, strength, _ = ctx.params
        scaled = weight * (fmax * strength)
        scaled_cos = scaled * t.cos_phi
        return (scaled_cos * t.fa_fv,
                torch.addcmul(scaled_cos * t.dn_dlength / l0, scaled * t.normalized,
                              t.dcos_dlength),
                scaled_cos * t.dn_dvelocity / (l0 * curves.MAX_CONTRACTION_VELOCITY_PER_S))

    @staticmethod
    def _parameter_partials(ctx, weight, by_length, by_velocity, wanted):
        """``weight * dF/dp`` per sample for the parameters flagged in ``wanted`` (l0, phi0,
        Fmax, s, d), from the signal partials already weighted."""
        t = ctx.terms
        _, length, velocity = ctx.signals
        l0, phi0, fmax, strength, _ = ctx.params
        out: list[torch.Tensor | None] = [None] * 5
        if wanted[0]:
            out[0] = torch.addcmul(by_length * length, by_velocity, velocity).div_(-l0)
        if wanted[1]:  # dF/dphi0 = Fmax s N (dcos/dw) l0 cos(phi0), dcos/dw = -w / (l^2 cos)
            thickness = l0 * torch.sin(phi0)
            out[1] = (weight * (fmax * strength) * t.normalized
                      * (-thickness * l0 * torch.cos(phi0)) / (length * length * t.cos_phi))
        if wanted[2] or wanted[3]:
            weighted = weight * t.normalized * t.cos_phi
            out[2] = weighted * strength if wanted[2] else None
            out[3] = weighted * fmax if wanted[3] else None
        if wanted[4]:
            out[4] = weight * (fmax * strength) * t.cos_phi * t.norm_velocity
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_force):
        need = ctx.needs_input_grad
        by_act, by_length, by_velocity = _FiberForce._signal_partials(ctx, grad_force)
        by_params = _FiberForce._parameter_partials(ctx, grad_force, by_length, by_velocity,
                                                    need[3:])
        grads: list[torch.Tensor | None] = []
        for i, grad in enumerate((by_act, by_length, by_velocity)):  # summed over broadcasts
            grads.append(grad.sum_to_size(ctx.signals[i].shape) if need[i] else None)
        for grad, param in zip(by_params, ctx.params, strict=True):
            grads.append(None if grad is None else grad.sum_to_size(param.shape).squeeze(-1))
        return tuple(grads)

    @staticmethod
    def jvp(ctx, *tangents):
        by_signals = _FiberForce._signal_partials(ctx, 1.0)
        by_params = _FiberForce._parameter_partials(ctx, 1.0, by_signals[1], by_signals[2],
                                                    [t is not None for t in tangents[3:]])
        total = torch.zeros_like(ctx.terms.force)
        for partial, tangent in zip(by_signals, tangents[:3], strict=True):
            if tangent is not None:
                total = total + partial * tangent
        for partial, tangent in zip(by_params, tangents[3:], strict=True):
            if partial is not None:
                total = total + partial * tangent.unsqueeze(-1)
        return total


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
