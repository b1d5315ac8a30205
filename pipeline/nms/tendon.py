"""Fibre kinematics for a stiff (rigid) or an elastic tendon.

``stiff``: the tendon keeps its slack length, so ``l cos(phi) = l_mt - l_ts`` with constant
thickness gives ``l = sqrt((l_mt - l_ts)^2 + w^2)`` and, differentiating in time,
``v = cos(phi) dl_mt/dt`` (``dl_mt/dt`` by second-order finite differences). Needs
``l_mt > l_ts``.

``elastic``: the first-order Rosenbrock update of paper 002 (appendix A, eq. A5) on the residual
``f = F_T(l) - F_M(l, v, a)``; see :mod:`pipeline.nms._rosenbrock` for the formulas. The time loop
runs outside autograd (numba or numpy) inside a custom :class:`torch.autograd.Function`, whose
backward is the discrete adjoint of the very same recursion: the local Jacobians of every step are
obtained at once by torch autograd on the step evaluated batched over all time steps (exact second
derivatives), then one backward sweep propagates the adjoint. The first sample is in static
equilibrium (zero fibre velocity); its gradient comes from the implicit function theorem.

Limitation of the one-step scheme (as published): each step is one Newton step on the fibre
velocity through the asinh-shaped force-velocity curve. A large activation jump within one short
step (e.g. 0.35 per sample at 1 kHz) asks for an unphysiological velocity (|v~| >> 1) and can lock
the update into a spurious period-2 oscillation. Activations from the CEINMS filter at about
100 Hz are smooth enough; a warning is logged when |v~| exceeds 1.5.

Shapes: ``(trial, muscle, time)`` for signals, ``(muscle,)`` for parameters.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from pipeline.nms import _rosenbrock, curves
from pipeline.nms.mtu import time_derivative

__all__ = ["elastic_fiber_kinematics", "stiff_fiber_kinematics", "tendon_strain"]

log = logging.getLogger(__name__)

_MAX_PLAUSIBLE_NORM_VELOCITY = 1.5


def _thickness(optimal_fiber_length_m: torch.Tensor, pennation_at_optimal_rad: torch.Tensor):
    return (optimal_fiber_length_m * torch.sin(pennation_at_optimal_rad)).unsqueeze(-1)


def stiff_fiber_kinematics(
    mtu_length_m: torch.Tensor,
    *,
    optimal_fiber_length_m: torch.Tensor,
    tendon_slack_length_m: torch.Tensor,
    pennation_at_optimal_rad: torch.Tensor,
    dt_s: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fibre length and velocity ``(..., muscle, time)`` with an inextensible tendon."""
    return stiff_fiber_state(mtu_length_m, time_derivative(mtu_length_m, dt_s=dt_s),
                             optimal_fiber_length_m=optimal_fiber_length_m,
                             tendon_slack_length_m=tendon_slack_length_m,
                             pennation_at_optimal_rad=pennation_at_optimal_rad)


def stiff_fiber_state(
    mtu_length_m: torch.Tensor,
    mtu_velocity_mps: torch.Tensor,
    *,
    optimal_fiber_length_m: torch.Tensor,
    tendon_slack_length_m: torch.Tensor,
    pennation_at_optimal_rad: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pointwise part of :func:`stiff_fiber_kinematics`, given the MTU velocity."""
    along_tendon = mtu_length_m - tendon_slack_length_m.unsqueeze(-1)
    thickness = _thickness(optimal_fiber_length_m, pennation_at_optimal_rad)
    fiber_length = torch.sqrt(along_tendon**2 + thickness**2)
    fiber_velocity = along_tendon / fiber_length * mtu_velocity_mps
    return fiber_length, fiber_velocity


def tendon_strain(
    mtu_length_m: torch.Tensor,
    fiber_length_m: torch.Tensor,
    *,
    optimal_fiber_length_m: torch.Tensor,
    tendon_slack_length_m: torch.Tensor,
    pennation_at_optimal_rad: torch.Tensor,
) -> torch.Tensor:
    """Tendon strain ``(l_mt - l cos(phi)) / l_ts - 1`` (negative when slack), same shape as l."""
    thickness = _thickness(optimal_fiber_length_m, pennation_at_optimal_rad)
    along_tendon = torch.sqrt(fiber_length_m**2 - thickness**2)
    slack = tendon_slack_length_m.unsqueeze(-1)
    return (mtu_length_m - along_tendon) / slack - 1.0


def tendon_strain_and_partials(mtu_length_m: torch.Tensor, fiber_length_m: torch.Tensor, *,
                               optimal_fiber_length_m: torch.Tensor,
                               tendon_slack_length_m: torch.Tensor,
                               pennation_at_optimal_rad: torch.Tensor,
                               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`tendon_strain` and its per-sample partial derivatives w.r.t. the fibre length and
    each muscle's own ``optimal_fiber_length_m`` and ``tendon_slack_length_m``, outside autograd.

    With ``w = l0 sin(phi0)`` and ``c = sqrt(l^2 - w^2)``: ``d/dl = -l / (c l_ts)``,
    ``d/dl0 = w sin(phi0) / (c l_ts)``, ``d/dl_ts = -(strain + 1) / l_ts``.
    """
    # the value as tendon_strain computes it, to the bit
    thickness = _thickness(optimal_fiber_length_m, pennation_at_optimal_rad)
    along_tendon = torch.sqrt(fiber_length_m**2 - thickness**2)
    slack = tendon_slack_length_m.unsqueeze(-1)
    strain = (mtu_length_m - along_tendon) / slack - 1.0
    sin_phi0 = torch.sin(pennation_at_optimal_rad).unsqueeze(-1)
    inverse_slack = 1.0 / slack
    per_along = inverse_slack / along_tendon
    return strain, {"fiber_length_m": -fiber_length_m * per_along,
                    "optimal_fiber_length_m": (thickness * sin_phi0) * per_along,
                    "tendon_slack_length_m": -(strain + 1.0) * inverse_slack}


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.dtype != torch.float64 or tensor.device.type != "cpu":  # .to() costs when a no-op
        tensor = tensor.to(device="cpu", dtype=torch.float64)
    return tensor.numpy()


def _local_jacobians(length, velocity, act_np, lmt_np, params, *, dt_s, k_tendon):
    """Partials of every increment ``dl_i`` (``(time - 1, n)`` each) w.r.t. ``l_i``, ``v_i``,
    ``a_i``, ``a_{i+1}``, ``lmt_i``, ``lmt_{i+1}``, ``l0``, ``l_ts``, ``d``, ``sin(phi0)``, in
    closed form (:func:`pipeline.nms._rosenbrock.increment_partials`; tests hold them to
    autograd)."""
    return _rosenbrock.increment_partials(length, velocity, act_np, lmt_np, *params, dt_s=dt_s,
                                          k_tendon=k_tendon)


class _RosenbrockFiber(torch.autograd.Function):
    """``(l_init (n,), a (n, T), l_mt (n, T), l0, l_ts, d, sin_phi0 (n,)) -> (l, v) (n, T)``.

    Reverse mode (``backward``): the discrete adjoint. Forward mode (``jvp``): the tangent
    recursion of the same update (:func:`pipeline.nms._rosenbrock.tangent`), exact too.
    """

    @staticmethod
    def forward(ctx, l_init, act, lmt, l0, lts, damping, sin_phi0, dt_s, k_tendon):
        act_np = np.ascontiguousarray(_to_numpy(act).T)
        lmt_np = np.ascontiguousarray(_to_numpy(lmt).T)
        params = [np.ascontiguousarray(_to_numpy(p)) for p in (l0, lts, damping, sin_phi0)]
        length, velocity = _rosenbrock.integrate(
            np.ascontiguousarray(_to_numpy(l_init)), act_np, lmt_np, *params,
            dt_s=dt_s, k_tendon=k_tendon,
        )
        ctx.numpy_state = (length, velocity, act_np, lmt_np, params)
        ctx.dt_s = dt_s
        ctx.k_tendon = k_tendon
        ctx.like = (act.dtype, act.device)
        out = (torch.from_numpy(length.T.copy()), torch.from_numpy(velocity.T.copy()))
        return tuple(o.to(dtype=act.dtype, device=act.device) for o in out)

    @staticmethod
    def _jacobians(ctx) -> list[np.ndarray]:
        if getattr(ctx, "local_jacobians", None) is None:
            length, velocity, act_np, lmt_np, params = ctx.numpy_state
            ctx.local_jacobians = _local_jacobians(length, velocity, act_np, lmt_np, params,
                                                   dt_s=ctx.dt_s, k_tendon=ctx.k_tendon)
        return ctx.local_jacobians

    @staticmethod
    def backward(ctx, grad_length, grad_velocity):
        length = ctx.numpy_state[0]
        dt_s = ctx.dt_s
        n_steps = length.shape[0] - 1
        jac = _RosenbrockFiber._jacobians(ctx)
        grad_l_np = np.ascontiguousarray(_to_numpy(grad_length).T)
        grad_v_np = np.ascontiguousarray(_to_numpy(grad_velocity).T)
        bar_l_init, bar_step = _rosenbrock.adjoint(grad_l_np, grad_v_np, jac[0], jac[1], dt_s=dt_s)

        def shifted_pair(jac_now, jac_next):
            total = np.zeros((n_steps + 1, bar_step.shape[1]))
            total[:-1] += bar_step * jac_now
            total[1:] += bar_step * jac_next
            return total.T

        dtype, device = ctx.like
        grads = [
            bar_l_init,
            shifted_pair(jac[2], jac[3]),
            shifted_pair(jac[4], jac[5]),
            *[(bar_step * j).sum(axis=0) for j in jac[6:]],
        ]
        grads = [torch.from_numpy(np.ascontiguousarray(g)).to(dtype=dtype, device=device)
                 for g in grads]
        return (*grads, None, None)

    @staticmethod
    def jvp(ctx, t_l_init, t_act, t_lmt, t_l0, t_lts, t_damping, t_sin_phi0, _dt, _k):
        length = ctx.numpy_state[0]
        n = length.shape[1]
        jac = _RosenbrockFiber._jacobians(ctx)
        forcing = np.zeros_like(jac[0])
        for tangent, now, after in ((t_act, jac[2], jac[3]), (t_lmt, jac[4], jac[5])):
            if tangent is not None:
                t_np = _to_numpy(tangent).T
                forcing += now * t_np[:-1] + after * t_np[1:]
        for tangent, partial in zip((t_l0, t_lts, t_damping, t_sin_phi0), jac[6:], strict=True):
            if tangent is not None:
                forcing += partial * _to_numpy(tangent)[None, :]
        tl_init = np.zeros(n) if t_l_init is None else np.ascontiguousarray(_to_numpy(t_l_init))
        t_length, t_velocity = _rosenbrock.tangent(tl_init, forcing, jac[0], jac[1],
                                                   dt_s=ctx.dt_s)
        dtype, device = ctx.like
        return tuple(torch.from_numpy(np.ascontiguousarray(t.T)).to(dtype=dtype, device=device)
                     for t in (t_length, t_velocity))


def elastic_fiber_kinematics(
    activation: torch.Tensor,
    mtu_length_m: torch.Tensor,
    *,
    optimal_fiber_length_m: torch.Tensor,
    tendon_slack_length_m: torch.Tensor,
    pennation_at_optimal_rad: torch.Tensor,
    damping: torch.Tensor,
    dt_s: float,
    tendon_strain_at_one_norm_force: float = curves.TENDON_STRAIN_AT_ONE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fibre length and velocity ``(..., muscle, time)`` with an elastic tendon (Rosenbrock).

    Args:
        activation, mtu_length_m: ``(..., muscle, time)``.
        optimal_fiber_length_m, tendon_slack_length_m, pennation_at_optimal_rad, damping:
            ``(muscle,)``.
        dt_s: sample interval (the Rosenbrock step).
        tendon_strain_at_one_norm_force: ``eps0`` of the tendon curve (0.049 in OpenSim).

    Differentiable w.r.t. every tensor argument. The fibre velocity at the first sample is 0.
    """
    k_tendon = curves.tendon_stiffness_exponent(tendon_strain_at_one_norm_force)
    shape = activation.shape
    n_time = shape[-1]
    lead = shape[:-1]
    per_element = [
        p.expand(lead).reshape(-1)
        for p in (optimal_fiber_length_m, tendon_slack_length_m, damping,
                  torch.sin(pennation_at_optimal_rad))
    ]
    act = activation.reshape(-1, n_time)
    lmt = mtu_length_m.expand(shape).reshape(-1, n_time)
    l_star = _rosenbrock.static_equilibrium(
        *(np.ascontiguousarray(_to_numpy(x)) for x in (act[:, 0], lmt[:, 0], *per_element)),
        k_tendon=k_tendon,
    )
    l_star_t = torch.from_numpy(l_star).to(dtype=activation.dtype, device=activation.device)
    # Implicit function theorem: same value, gradient -g_theta / g_l at the root.
    residual, slope = _rosenbrock.residual_and_partials(
        _rosenbrock.TORCH, l_star_t, torch.zeros_like(l_star_t), act[:, 0], lmt[:, 0],
        *per_element, k_tendon=k_tendon,
    )[:2]
    l_init = l_star_t - (residual - residual.detach()) / slope.detach()
    length, velocity = _RosenbrockFiber.apply(l_init, act, lmt, *per_element, dt_s, k_tendon)
    peak = float((velocity.detach() / (curves.MAX_CONTRACTION_VELOCITY_PER_S
                                       * per_element[0].detach().unsqueeze(-1))).abs().max())
    if not peak <= _MAX_PLAUSIBLE_NORM_VELOCITY:
        log.warning("elastic tendon: normalised fibre velocity reached %.3g (> %.1g); activation "
                    "jumps too much per step (dt_s=%g) or parameters are implausible, and the "
                    "Rosenbrock update may oscillate", peak, _MAX_PLAUSIBLE_NORM_VELOCITY, dt_s)
    return length.reshape(shape), velocity.reshape(shape)
