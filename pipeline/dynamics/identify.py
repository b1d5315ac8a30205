"""Equation-error identification of muscle and segment inertial parameters from motion.

Along the measured motion, the muscles' moments plus the external loads must equal what the
skeleton needs::

    tau_muscle(p; EMG, MTU lengths, moment arms) + J^T F_ext = Y(q, qd, qdd) pi

with no inverse-dynamics moments used. The equation is linear in the inertial parameters ``pi``,
so for every muscle parameter vector ``p`` the best ``pi`` is a small linear least-squares solve
(variable projection): the optimiser sees only ``p``, and ``pi`` follows exactly. Only the
combinations of ``pi`` the motion determines (:mod:`pipeline.dynamics.identifiability`) are
estimated; the rest stays at the prior (the scaled model).

Scaling every muscle strength and every inertial parameter by one factor satisfies the equation
equally well unless something absolute enters it: external loads (ground reactions, a measured
load), a body whose inertial parameters are known (a payload), or the subject's body mass. Without
one, :func:`identify_equation_error` stops with a clear message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.dynamics.identifiability import Identifiability, identifiability
from pipeline.dynamics.skeleton import Skeleton, regressor
from pipeline.errors import CalibrationError, describe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MotionTrials:
    """Motion of the calibration trials on the muscle data's time grid.

    ``q``, ``qd``, ``qdd``: (trial, time, n_coordinates); ``external``: generalized external
    forces J^T F (trial, time, n_coordinates), zeros when there are none; ``mask``: (trial, time).
    """

    q: torch.Tensor
    qd: torch.Tensor
    qdd: torch.Tensor
    external: torch.Tensor
    mask: torch.Tensor


@dataclass(frozen=True)
class Anchor:
    """What fixes the force/mass scale: ``known_bodies`` (payloads whose inertial parameters are
    known), ``body_mass_kg`` (the sum of the masses of ``mass_bodies``, e.g. every body of the
    model and the subject's mass from subjects.tsv); external loads anchor by themselves."""

    known_bodies: tuple[str, ...] = ()
    body_mass_kg: float | None = None
    mass_bodies: tuple[str, ...] = ()


@dataclass(frozen=True)
class InertialFit:
    """The inertial parameters that best close the equation for given muscle moments."""

    pi: torch.Tensor  # (n_bodies, 10)
    residual: torch.Tensor  # (rows,) weighted
    normal_matrix: torch.Tensor  # A^T A of the estimated combinations (for standard errors)


class EquationError:
    """The equation-error problem: rows, regressor, identifiable space and anchor.

    ``rows`` are the coordinates whose equation is used: the muscle-driven DOFs (``dof_names`` of
    the muscle data) and ``unactuated`` coordinates (no muscle or motor acts on them, e.g. the
    pelvis of a floating base, whose equations carry the ground reactions).
    """

    def __init__(self, skeleton: Skeleton, motion: MotionTrials, dof_names: Sequence[str], *,
                 unactuated: Sequence[str] = (), anchor: Anchor = Anchor(),
                 prior: torch.Tensor | None = None, rank_rtol: float = 1e-8,
                 source: str | None = None) -> None:
        self.skeleton = skeleton
        index = {name: i for i, name in enumerate(skeleton.coordinates)}
        missing = [d for d in (*dof_names, *unactuated) if d not in index]
        if missing:
            raise CalibrationError(describe(source, f"coordinates {missing} are not in the model",
                                            "calibrate DOFs of the subject's model"))
        self.dof_rows = [index[d] for d in dof_names]
        self.free_rows = [index[d] for d in unactuated]
        self.rows = self.dof_rows + self.free_rows
        self.mask = motion.mask.to(torch.bool)
        self.prior = (skeleton.inertial if prior is None else prior).to(torch.float64)
        y = regressor(skeleton, motion.q, motion.qd, motion.qdd)[..., self.rows, :]
        self.y = y[self.mask]  # (samples, rows, P)
        self.external = motion.external[..., self.rows][self.mask]  # (samples, rows)
        nb = skeleton.n_bodies
        body_index = {b: i for i, b in enumerate(skeleton.bodies)}
        unknown = [b for b in anchor.known_bodies if b not in body_index]
        if unknown:
            raise CalibrationError(describe(source, f"anchor bodies {unknown} are not in the "
                                            "model", "name bodies of the subject's model"))
        known = np.zeros((nb, 10), bool)
        for b in anchor.known_bodies:
            known[body_index[b]] = True
        self.estimated = torch.as_tensor(~known.reshape(-1))
        # row weights: 1 / variance of each row's torque under the prior model
        prior_tau = self.y @ self.prior.reshape(-1)
        var = prior_tau.var(dim=0)
        self.row_weights = torch.where(var > 1e-12, 1.0 / var.clamp_min(1e-12),
                                       torch.ones_like(var)).sqrt()
        scale = _parameter_scale(self.prior)
        self.identifiability: Identifiability = identifiability(
            (self.y * self.row_weights[:, None])[..., self.estimated],
            rtol=rank_rtol, column_scale=scale.reshape(-1)[self.estimated].numpy())
        basis = torch.zeros(self.identifiability.rank, nb * 10, dtype=torch.float64)
        basis[:, self.estimated] = torch.as_tensor(self.identifiability.basis)
        self.basis = basis  # (rank, P)
        self.mass_row = None
        if anchor.body_mass_kg is not None:
            row = torch.zeros(nb * 10, dtype=torch.float64)
            for b in anchor.mass_bodies or skeleton.bodies:
                row[body_index[b] * 10] = 1.0
            self.mass_row = (row, float(anchor.body_mass_kg))
        self.anchored_by = self._check_anchor(bool(known.any()), source)

    def _check_anchor(self, has_known: bool, source: str | None) -> str:
        if float(self.external.abs().max()) > 0 if self.external.numel() else False:
            return "external loads"
        if has_known and float((self.y[..., ~self.estimated] @ self.prior.reshape(-1)[
                ~self.estimated]).abs().max()) > 0:
            return "known bodies"
        if self.mass_row is not None:
            row = self.mass_row[0]
            # the mass sum anchors only when no unidentifiable direction can absorb it
            in_span = self.basis.T @ (self.basis @ row)
            if float((row - in_span).norm()) < 1e-6 * float(row.norm()):
                return "body mass"
        raise CalibrationError(describe(
            source, "nothing in the data fixes the force/mass scale: scaling every muscle "
            "strength and every segment's inertia by one factor fits the motion equally well",
            "give an anchor: trials with ground reactions or a measured external load, a payload "
            "of known mass (motion.known_bodies), or a model whose identifiable bodies carry the "
            "subject's mass (subjects.tsv mass_kg)"))

    def fit_inertia(self, muscle_moments: torch.Tensor) -> InertialFit:
        """Best inertial parameters for muscle moments (samples, dof_rows) at the masked samples."""
        lhs = torch.cat([muscle_moments, torch.zeros_like(self.external[:, len(self.dof_rows):])],
                        dim=1) + self.external
        known = self.y @ (self.prior.reshape(-1) * ~self.estimated)
        # unknown part: y @ (prior_est + basis^T w)
        prior_est = self.prior.reshape(-1) * self.estimated
        target = (lhs - known - self.y @ prior_est) * self.row_weights
        a = (self.y @ self.basis.T) * self.row_weights[:, None]  # (samples, rows, rank)
        a = a.reshape(-1, a.shape[-1])
        target = target.reshape(-1)
        if self.mass_row is not None:
            row, mass = self.mass_row
            weight = float(a.abs().max()) / max(mass, 1.0)
            a = torch.cat([a, weight * (row @ self.basis.T)[None, :]])
            target = torch.cat([target, weight * (mass - row @ prior_est)[None]])
        normal = a.T @ a
        w = torch.linalg.solve(normal, a.T @ target)
        pi = (prior_est + self.basis.T @ w) + self.prior.reshape(-1) * ~self.estimated
        return InertialFit(pi.reshape(self.prior.shape), a @ w - target, normal)


def _parameter_scale(pi: torch.Tensor) -> torch.Tensor:
    """Typical magnitude of each inertial parameter of each body (for unit-free rank tests)."""
    mass = pi[:, 0].abs().clamp_min(1e-3)
    inertia = pi[:, 4:7].abs().mean(dim=1).clamp_min(1e-6)
    length = (inertia / mass).sqrt()
    return torch.stack([mass, *(mass * length,) * 3, *(inertia,) * 6], dim=1)


def equation_error_terms(problem: EquationError, muscle_moments_fn: Callable,
                         penalty_fn: Callable | None = None) -> Callable:
    """``terms(p) -> (total, tracking, penalty)`` for :func:`calibrate_gradient`.

    ``muscle_moments_fn(p)`` returns the muscle model's output (moments (trial, dof, time)
    and whatever ``penalty_fn(output, p)`` needs).
    """
    n = problem.mask.sum()

    def terms(p: torch.Tensor):
        out = muscle_moments_fn(p)
        moments = out.moments_nm.transpose(1, 2)[problem.mask]  # (samples, dofs)
        fit = problem.fit_inertia(moments)
        tracking = (fit.residual ** 2).sum() / (n * len(problem.rows))
        penalty = penalty_fn(out, p) if penalty_fn is not None else tracking * 0
        return tracking + penalty, tracking, penalty

    return terms


def equation_error_residuals(problem: EquationError, objective) -> Callable:
    """``residuals(p)`` whose sum of squares is the loss of :func:`equation_error_terms` with the
    objective's operating-range penalties and prior (for least-squares refinement)."""
    n = problem.mask.sum()

    def residuals(p: torch.Tensor) -> torch.Tensor:
        out = objective.simulate(p)
        fit = problem.fit_inertia(out.moments_nm.transpose(1, 2)[problem.mask])
        parts = [fit.residual / torch.sqrt(n * len(problem.rows))]
        valid = objective.data.mask[:, None, :]
        root_tw = torch.sqrt(objective.time_weights)[:, None, :]
        for key, x in (("fiber_length", out.normalized_fiber_length),
                       ("tendon_strain", out.tendon_strain)):
            rng = objective.penalties[key]
            dist = torch.relu(rng.lower - x) + torch.relu(x - rng.upper)
            parts.append((dist * root_tw * rng.weight ** 0.5)[valid.expand_as(x)])
        parts.append(objective.prior_residuals(p))
        return torch.cat(parts)

    return residuals


def solve_equation_error(residuals: Callable[[torch.Tensor], torch.Tensor], spec, p0, /, *,
                         max_evaluations: int = 60, tolerance: float = 1e-12) -> np.ndarray:
    """Bounded Gauss-Newton (scipy's trust-region reflective) on ``residuals`` from ``p0``.

    The Jacobian is by finite differences: the elastic tendon's custom autograd function has no
    forward-mode rule, and the muscle parameters are few.
    """
    from scipy.optimize import least_squares

    span = spec.upper - spec.lower
    x0 = np.clip(np.asarray(p0, dtype=float), spec.lower + 1e-9 * span, spec.upper - 1e-9 * span)

    def fun(p: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            r = residuals(torch.as_tensor(p, dtype=torch.float64)).numpy()
        return np.nan_to_num(r, nan=1e6, posinf=1e6, neginf=-1e6)

    result = least_squares(fun, x0, bounds=(spec.lower, spec.upper), method="trf",
                           x_scale=span, ftol=tolerance, xtol=tolerance, gtol=tolerance,
                           max_nfev=max_evaluations)
    log.info("equation-error least squares: loss %.6g after %d evaluations",
             2.0 * result.cost, result.nfev)
    return np.asarray(result.x, dtype=float)
