"""Exact derivatives of every muscle's outputs w.r.t. its own parameters (forward mode, batched).

A muscle's parameters touch only that muscle's activation, fibre state and force, so one tangent per
parameter *kind* (a unit change of, say, ``c1`` in every muscle at once) gives the derivative of
every muscle's outputs w.r.t. its own parameter of that kind: a column-compressed Jacobian. This
module propagates those tangents through the model by the chain rule:

* pointwise stages (muscle activation, stiff fibre state, fibre force, tendon strain) get their
  elementwise partials from one reverse pass of torch autograd each, on the stage evaluated with
  one parameter copy per sample (so the partials are not summed over time);
* the recursive stages get tangent recursions of the very same updates: the activation filter
  (:mod:`pipeline.nms._iir`) and the elastic tendon's Rosenbrock update
  (:func:`pipeline.nms._rosenbrock.tangent`, local Jacobians as in its adjoint, the first sample by
  the implicit function theorem).

No finite differences and no torch forward-mode autodiff (which imports torch's compiler on first
use, seconds of start-up). Tests hold the result equal to reverse-mode autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from pipeline.nms import _iir, _rosenbrock, curves
from pipeline.nms.activation import (
    _delayed,
    delay_samples,
    muscle_activation_and_partials,
)
from pipeline.nms.model import MuscleParameters
from pipeline.nms.mtu import fiber_force_and_partials, time_derivative
from pipeline.nms.tendon import (
    _local_jacobians,
    elastic_fiber_kinematics,
    stiff_fiber_state,
    tendon_strain_and_partials,
)

__all__ = ["FIELDS", "MuscleSignals", "activation_tangents", "neural_tangents",
           "parameter_tangents"]

#: Parameter fields of :class:`MuscleParameters` that tangents can be taken for.
FIELDS = ("c1", "c2", "shape_factor", "optimal_fiber_length_m", "tendon_slack_length_m",
          "strength", "damping")
_ACTIVATION_FIELDS = ("c1", "c2", "shape_factor")


class MuscleSignals(NamedTuple):
    """Per-muscle outputs (or their tangents), each ``(trial, muscle, time)``."""

    force_n: torch.Tensor
    normalized_fiber_length: torch.Tensor
    tendon_strain: torch.Tensor


def _pointwise_partials(fn: Callable[..., tuple[torch.Tensor, ...]],
                        inputs: dict[str, torch.Tensor], wrt: Sequence[str],
                        ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """The outputs of ``fn(**inputs)`` (detached) and the elementwise partials of each w.r.t. the
    inputs ``wrt`` (every input has one value per sample, so a unit cotangent yields the
    partials themselves)."""
    with torch.enable_grad():
        leaves = {k: (v.detach().clone().requires_grad_() if k in wrt else v.detach())
                  for k, v in inputs.items()}
        outputs = fn(**leaves)
        result = []
        for i, out in enumerate(outputs):
            # A scalar output: explicit grad_outputs would make torch import sympy (0.7 s).
            grads = torch.autograd.grad(out.sum(), [leaves[k] for k in wrt],
                                        retain_graph=i < len(outputs) - 1, allow_unused=True)
            result.append({k: (torch.zeros_like(leaves[k]) if g is None else g).reshape(-1)
                           for k, g in zip(wrt, grads, strict=True)})
    return [out.detach() for out in outputs], result


def parameter_tangents(params: MuscleParameters, excitation: torch.Tensor,
                       mtu_length_m: torch.Tensor, *, dt_s: float, tendon: str, emd_s: float,
                       fields: Sequence[str] = FIELDS,
                       tendon_strain_at_one_norm_force: float = curves.TENDON_STRAIN_AT_ONE,
                       excitation_before: torch.Tensor | None = None,
                       ) -> tuple[MuscleSignals, dict[str, MuscleSignals]]:
    """The model's per-muscle outputs and their derivatives w.r.t. each muscle's own parameter.

    Args:
        params: ``(muscle,)`` parameters; excitation, mtu_length_m: ``(trial, muscle, time)``.
        fields: the parameter fields to differentiate (names of :class:`MuscleParameters`).
        excitation_before: EMG before the window, as in :func:`pipeline.nms.simulate`.

    Returns:
        ``(values, {field: tangents})``: ``tangents.force_n[t, m, n]`` is
        ``d force_n[t, m, n] / d params.<field>[m]`` (likewise for the other signals).
    """
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise ValueError(f"no tangents for {unknown}; use any of {FIELDS}")
    dtype, device = excitation.dtype, excitation.device
    shape = excitation.shape
    n_trials, n_muscles, n_time = shape

    def per_sample(p: torch.Tensor) -> torch.Tensor:
        return p.detach()[:, None].expand(shape).reshape(-1)

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.detach().reshape(-1, 1)

    def full(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(shape)

    p = {name: value.detach() for name, value in params.as_dict().items()}
    zero = torch.zeros(shape, dtype=dtype, device=device)
    act, act_tangent = activation_tangents(excitation, p["c1"], p["c2"], p["shape_factor"],
                                           dt_s=dt_s, emd_s=emd_s, fields=fields,
                                           excitation_before=excitation_before)

    geometry = {"optimal_fiber_length_m": p["optimal_fiber_length_m"],
                "tendon_slack_length_m": p["tendon_slack_length_m"],
                "pennation_at_optimal_rad": p["pennation_at_optimal_rad"]}
    geometry_e = {k: per_sample(v) for k, v in geometry.items()}
    length_tangent: dict[str, torch.Tensor] = {}
    velocity_tangent: dict[str, torch.Tensor] = {}
    if tendon == "stiff":
        mtu_velocity = time_derivative(mtu_length_m, dt_s=dt_s)
        wrt = [f for f in ("optimal_fiber_length_m", "tendon_slack_length_m") if f in fields]
        if wrt:
            (length, velocity), (of_length, of_velocity) = _pointwise_partials(
                lambda **kw: stiff_fiber_state(kw.pop("lmt"), kw.pop("vmt"), **kw),
                {"lmt": flat(mtu_length_m), "vmt": flat(mtu_velocity), **geometry_e}, wrt)
            length, velocity = full(length), full(velocity)
            for f in wrt:
                length_tangent[f] = full(of_length[f])
                velocity_tangent[f] = full(of_velocity[f])
        else:
            length, velocity = stiff_fiber_state(mtu_length_m, mtu_velocity, **geometry)
    elif tendon == "elastic":
        length, velocity = _elastic_tangents(
            act, mtu_length_m, p, act_tangent, fields, dt_s=dt_s,
            tendon_strain_at_one_norm_force=tendon_strain_at_one_norm_force,
            length_tangent=length_tangent, velocity_tangent=velocity_tangent)
    else:
        raise ValueError(f"tendon must be 'elastic' or 'stiff', got {tendon!r}")

    force, of_force = fiber_force_and_partials(
        act, length, velocity, parameters=[f for f in ("optimal_fiber_length_m", "strength",
                                                       "damping") if f in fields],
        **{k: p[k] for k in ("optimal_fiber_length_m", "pennation_at_optimal_rad",
                             "max_isometric_force_n", "strength", "damping")})
    strain, of_strain = tendon_strain_and_partials(mtu_length_m, length, **geometry)
    l0 = p["optimal_fiber_length_m"][:, None]
    values = MuscleSignals(force, length / l0, strain)
    tangents = {}
    for f in fields:
        t_act = act_tangent.get(f, zero)
        t_len = length_tangent.get(f, zero)
        t_vel = velocity_tangent.get(f, zero)
        t_force = (of_force["activation"] * t_act + of_force["fiber_length_m"] * t_len
                   + of_force["fiber_velocity_mps"] * t_vel)
        if f in of_force:
            t_force = t_force + of_force[f]
        t_norm = t_len / l0
        if f == "optimal_fiber_length_m":
            t_norm = t_norm - length / l0**2
        t_strain = of_strain["fiber_length_m"] * t_len
        if f in of_strain:
            t_strain = t_strain + of_strain[f]
        tangents[f] = MuscleSignals(t_force, t_norm, t_strain)
    return values, tangents


def activation_tangents(excitation: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor,
                        shape_factor: torch.Tensor, *, dt_s: float, emd_s: float,
                        fields: Sequence[str] = _ACTIVATION_FIELDS,
                        excitation_before: torch.Tensor | None = None,
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Muscle activation ``(trial, muscle, time)`` (:func:`pipeline.nms.activation.activation`)
    and its derivatives w.r.t. each muscle's own ``c1``, ``c2`` and ``shape_factor`` (those of
    them in ``fields``): the filter's tangent recursions, then the pointwise non-linearity."""
    shape = excitation.shape

    def full(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(shape)

    neural, neural_tangent = neural_tangents(excitation, c1, c2, dt_s=dt_s, emd_s=emd_s,
                                             fields=fields, excitation_before=excitation_before)
    act, by_neural, by_shape = muscle_activation_and_partials(neural, shape_factor.detach())
    act_tangent = {f: by_neural * t for f, t in neural_tangent.items()}
    if "shape_factor" in fields:
        act_tangent["shape_factor"] = by_shape
    return act, act_tangent


def neural_tangents(excitation: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, *,
                    dt_s: float, emd_s: float, fields: Sequence[str] = ("c1", "c2"),
                    excitation_before: torch.Tensor | None = None,
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Neural activation ``(trial, muscle, time)``
    (:func:`pipeline.nms.activation.neural_activation`, detached) and its derivatives w.r.t.
    each muscle's own ``c1`` and ``c2`` (those of them in ``fields``): the filter, then its
    tangent recursions, both tangents in one run of the filter (module :mod:`pipeline.nms._iir`).
    """
    dtype, device = excitation.dtype, excitation.device
    delayed = _delayed(excitation.detach(), delay_samples(emd_s=emd_s, dt_s=dt_s),
                       None if excitation_before is None else excitation_before.detach())
    neural, tangents = neural_tangents_arrays(
        delayed.cpu().double().numpy(), c1.detach().cpu().double().numpy(),
        c2.detach().cpu().double().numpy(), fields=fields)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(dtype=dtype, device=device)

    return tensor(neural), {f: tensor(t) for f, t in tangents.items()}


def neural_tangents_arrays(delayed: np.ndarray, c1: np.ndarray, c2: np.ndarray, *,
                           fields: Sequence[str] = ("c1", "c2"),
                           ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`neural_tangents` on float64 numpy arrays: ``delayed`` the excitation already shifted
    by the electromechanical delay ``(trial, muscle, time)``, ``c1``, ``c2`` ``(muscle,)``."""
    shape = delayed.shape
    n_trials, _, n_time = shape
    initial = delayed[..., :1]
    drive = (delayed - initial).reshape(-1, n_time)
    rows = {k: np.tile(c, n_trials) for k, c in (("c1", c1), ("c2", c2))}
    beta1, beta2 = rows["c1"] + rows["c2"], rows["c1"] * rows["c2"]
    alpha = 1.0 + rows["c1"] + rows["c2"] + rows["c1"] * rows["c2"]
    filtered = _iir.run_filter(drive, alpha, beta1, beta2)
    neural = initial + filtered.reshape(shape)
    wanted = [(f, other) for f, other in (("c1", "c2"), ("c2", "c1")) if f in fields]
    if not wanted:
        return neural, {}
    # d/dc of u = alpha x - beta1 S1 u - beta2 S2 u with alpha = (1 + c1)(1 + c2),
    # beta1 = c1 + c2, beta2 = c1 c2: the same filter driven by (1 + c_other) x - S1 u
    # - c_other S2 u.
    forcing = np.concatenate([(1.0 + rows[other])[:, None] * drive - _iir._delay(filtered, 1)
                              - rows[other][:, None] * _iir._delay(filtered, 2)
                              for _, other in wanted])
    n = len(wanted)
    tangent = _iir.run_filter(forcing, np.ones(n * beta1.size), np.tile(beta1, n),
                              np.tile(beta2, n))
    parts = np.split(tangent, n)
    return neural, {f: part.reshape(shape) for (f, _), part in zip(wanted, parts, strict=True)}


def _elastic_tangents(act: torch.Tensor, mtu_length_m: torch.Tensor, p: dict[str, torch.Tensor],
                      act_tangent: dict[str, torch.Tensor], fields: Sequence[str], *,
                      dt_s: float, tendon_strain_at_one_norm_force: float,
                      length_tangent: dict[str, torch.Tensor],
                      velocity_tangent: dict[str, torch.Tensor],
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Elastic fibre length and velocity; fills the tangents of both for ``fields``."""
    shape = act.shape
    dtype, device = act.dtype, act.device
    k_tendon = curves.tendon_stiffness_exponent(tendon_strain_at_one_norm_force)
    length, velocity = elastic_fiber_kinematics(
        act, mtu_length_m, optimal_fiber_length_m=p["optimal_fiber_length_m"],
        tendon_slack_length_m=p["tendon_slack_length_m"],
        pennation_at_optimal_rad=p["pennation_at_optimal_rad"], damping=p["damping"], dt_s=dt_s,
        tendon_strain_at_one_norm_force=tendon_strain_at_one_norm_force)

    def time_major(x: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(x.detach().cpu().double().numpy().reshape(-1, shape[-1]).T)

    def per_row(x: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(x.detach().cpu().double().numpy()[None, :]
                                    .repeat(shape[0], 0).reshape(-1))

    params = [per_row(p["optimal_fiber_length_m"]), per_row(p["tendon_slack_length_m"]),
              per_row(p["damping"]), per_row(torch.sin(p["pennation_at_optimal_rad"]))]
    length_np, velocity_np = time_major(length), time_major(velocity)
    act_np, lmt_np = time_major(act), time_major(mtu_length_m)
    jac = _local_jacobians(length_np, velocity_np, act_np, lmt_np, params, dt_s=dt_s,
                           k_tendon=k_tendon)
    # First sample: static equilibrium g(l, 0, a, l_mt, theta) = 0.
    with torch.enable_grad():
        leaves = [torch.from_numpy(x.copy()).requires_grad_()
                  for x in (length_np[0], act_np[0], *params[:3])]
        g = _rosenbrock.residual_and_partials(
            _rosenbrock.TORCH, leaves[0], torch.zeros_like(leaves[0]), leaves[1],
            torch.from_numpy(lmt_np[0]), leaves[2], leaves[3], leaves[4],
            torch.from_numpy(params[3]), k_tendon=k_tendon)[0]
        g_partials = [x.numpy() for x in torch.autograd.grad(g.sum(), leaves)]
    direct = {"optimal_fiber_length_m": 0, "tendon_slack_length_m": 1, "damping": 2}
    for f in fields:
        if f not in act_tangent and f not in direct:
            continue
        forcing = np.zeros_like(jac[0])
        g_dot = np.zeros(length_np.shape[1])
        if f in act_tangent:
            t_act = time_major(act_tangent[f])
            forcing += jac[2] * t_act[:-1] + jac[3] * t_act[1:]
            g_dot += g_partials[1] * t_act[0]
        if f in direct:
            forcing += jac[6 + direct[f]]
            g_dot += g_partials[2 + direct[f]]
        t_length, t_velocity = _rosenbrock.tangent(-g_dot / g_partials[0], forcing, jac[0],
                                                   jac[1], dt_s=dt_s)
        length_tangent[f] = torch.from_numpy(np.ascontiguousarray(t_length.T))\
            .to(dtype=dtype, device=device).reshape(shape)
        velocity_tangent[f] = torch.from_numpy(np.ascontiguousarray(t_velocity.T))\
            .to(dtype=dtype, device=device).reshape(shape)
    return length.detach(), velocity.detach()
