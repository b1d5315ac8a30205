"""Forward dynamics of the torch skeleton and multiple-shooting simulation for output error.

``qdd = M(q)^-1 (tau - (C(q, qd) - g(q) - J^T F_ext))``, integrated with a fixed step by explicit
Runge-Kutta 4 (default) or semi-implicit Euler. Everything is batched and differentiable, so the
joint-angle error of a simulation can be backpropagated to torques (hence muscle parameters) and
inertial parameters.

Enforced constraints (coordinate couplers, locked coordinates) are not modelled: a model with one
is refused with a clear message rather than simulated wrongly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from pipeline.dynamics.skeleton import Skeleton, mass_matrix_and_bias
from pipeline.errors import CalibrationError, describe

Integrator = Literal["rk4", "euler"]
INTEGRATORS = ("rk4", "euler")


def check_unconstrained(skeleton: Skeleton) -> None:
    if skeleton.constraints:
        raise CalibrationError(describe(
            skeleton.source or None, "forward dynamics does not model the enforced constraints "
            + ", ".join(skeleton.constraints),
            "use the equation-error method for this model (motion.simulate: false), or a model "
            "without coordinate couplers and locked coordinates"))


def accelerations(skeleton: Skeleton, q: torch.Tensor, qd: torch.Tensor, tau: torch.Tensor, *,
                  inertial: torch.Tensor | None = None,
                  loads: torch.Tensor | None = None) -> torch.Tensor:
    """qdd (..., n) produced by generalized forces ``tau`` (and body ``loads``) at (q, qd)."""
    m, bias = mass_matrix_and_bias(skeleton, q, qd, inertial=inertial, loads=loads)
    return torch.linalg.solve(m, (tau - bias).unsqueeze(-1)).squeeze(-1)


def step(skeleton: Skeleton, q: torch.Tensor, qd: torch.Tensor, t: float, dt: float,
         tau_fn: Callable[[float, torch.Tensor, torch.Tensor], torch.Tensor], *,
         method: Integrator = "rk4", inertial: torch.Tensor | None = None,
         loads_fn: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One fixed step of ``dt`` from time ``t``; ``tau_fn(t, q, qd)`` gives the torques."""

    def f(time, q_, qd_):
        loads = None if loads_fn is None else loads_fn(time, q_)
        return accelerations(skeleton, q_, qd_, tau_fn(time, q_, qd_), inertial=inertial,
                             loads=loads)

    if method == "euler":  # semi-implicit (symplectic) Euler
        qd_next = qd + dt * f(t, q, qd)
        return q + dt * qd_next, qd_next
    if method != "rk4":
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {method!r}")
    k1v, k1a = qd, f(t, q, qd)
    k2v = qd + 0.5 * dt * k1a
    k2a = f(t + 0.5 * dt, q + 0.5 * dt * k1v, k2v)
    k3v = qd + 0.5 * dt * k2a
    k3a = f(t + 0.5 * dt, q + 0.5 * dt * k2v, k3v)
    k4v = qd + dt * k3a
    k4a = f(t + dt, q + dt * k3v, k4v)
    return (q + dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v),
            qd + dt / 6 * (k1a + 2 * k2a + 2 * k3a + k4a))


def simulate(skeleton: Skeleton, q0: torch.Tensor, qd0: torch.Tensor, tau_fn, *, dt_s: float,
             n_steps: int, t0_s: float = 0.0, method: Integrator = "rk4",
             inertial: torch.Tensor | None = None, loads_fn: Callable | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """States (..., n_steps + 1, n) from (q0, qd0) (..., n)."""
    check_unconstrained(skeleton)
    qs, qds = [q0], [qd0]
    q, qd = q0, qd0
    for k in range(n_steps):
        q, qd = step(skeleton, q, qd, t0_s + k * dt_s, dt_s, tau_fn, method=method,
                     inertial=inertial, loads_fn=loads_fn)
        qs.append(q)
        qds.append(qd)
    return torch.stack(qs, -2), torch.stack(qds, -2)


def sampled(series: torch.Tensor, dt_s: float) -> Callable[[float], torch.Tensor]:
    """Linear interpolation in time of a sampled series (..., time, k) (held at the ends)."""
    n = series.shape[-2]

    def at(t: float) -> torch.Tensor:
        x = min(max(t / dt_s, 0.0), n - 1.0)
        i = min(int(x), n - 2)
        frac = x - i
        return (1 - frac) * series[..., i, :] + frac * series[..., i + 1, :]

    return at


def shooting_error(skeleton: Skeleton, q: torch.Tensor, qd: torch.Tensor, tau: torch.Tensor, *,
                   dt_s: float, segment_steps: int, method: Integrator = "rk4",
                   inertial: torch.Tensor | None = None, loads: torch.Tensor | None = None,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared joint-angle error of multiple shooting along measured trials.

    The trials (trial, time, n) are cut into segments of ``segment_steps`` samples; each segment
    starts from the measured state and is simulated (all segments at once, as one batch) under
    the torques ``tau`` (trial, time, n) and body ``loads`` (trial, time, n_bodies, 6); the error
    is taken at every simulated sample, so each segment's end must meet the next segment's
    measured start (continuity). ``mask`` (trial, time) leaves out padded samples.
    """
    check_unconstrained(skeleton)
    n_trials, n_time, n = q.shape
    n_segments = (n_time - 1) // segment_steps
    if n_segments < 1:
        raise ValueError(f"trials of {n_time} samples are shorter than one segment "
                         f"({segment_steps} steps)")
    used = n_segments * segment_steps

    def cut(x):  # (trial, time, ...) -> (trial * segment, segment_steps + 1, ...)
        starts = torch.arange(n_segments) * segment_steps
        idx = starts[:, None] + torch.arange(segment_steps + 1)[None, :]
        return x[:, idx].reshape(n_trials * n_segments, segment_steps + 1, *x.shape[2:])

    q_seg, qd_seg, tau_seg = cut(q[:, :used + 1]), cut(qd[:, :used + 1]), cut(tau[:, :used + 1])
    tau_at = sampled(tau_seg, dt_s)
    loads_at = None
    if loads is not None:
        load_seg = cut(loads[:, :used + 1])
        flat = load_seg.reshape(*load_seg.shape[:2], -1)
        flat_at = sampled(flat, dt_s)
        loads_at = lambda t, _q: flat_at(t).reshape(*load_seg.shape[:1], *load_seg.shape[2:])  # noqa: E731
    sim_q, _ = simulate(skeleton, q_seg[:, 0], qd_seg[:, 0], lambda t, _q, _qd: tau_at(t),
                        dt_s=dt_s, n_steps=segment_steps, method=method, inertial=inertial,
                        loads_fn=loads_at)
    err2 = ((sim_q[:, 1:] - q_seg[:, 1:]) ** 2).mean(-1)  # (segments, steps)
    if mask is None:
        return err2.mean()
    weight = cut(mask[:, :used + 1].to(err2.dtype))[:, 1:]
    return (err2 * weight).sum() / weight.sum().clamp_min(1.0)
