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
one, :class:`EquationError` stops with a clear message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.calibrate.losses import Objective
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
                 prior_weight: float = 0.0, source: str | None = None) -> None:
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
        # row weights: 1 / the mean square of the larger of each row's two sides under the
        # prior model: the segments' torque Y pi, or what is left for the muscles (Y pi minus the
        # external loads), whose errors (EMG noise) scale with it. Not a variance: a floating
        # base's vertical force varies little around the body weight. In a squat the knee's
        # segments need ~2 N m while its muscles carry ~100 N m of the ground reaction; weighting
        # by the segments' torque alone let the muscles' noise pull the segments' fit.
        prior_tau = self.y @ self.prior.reshape(-1)
        var = torch.maximum(prior_tau.pow(2).mean(dim=0),
                            (prior_tau - self.external).pow(2).mean(dim=0))
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
        self.dof_names = tuple(dof_names)
        self.n_samples = int(self.mask.sum())
        self.norm = float(np.sqrt(self.n_samples * len(self.rows)))
        # the estimated combinations w (pi = prior + basis^T w), weighted, plus the mass row
        design = ((self.y @ self.basis.T) * self.row_weights[:, None]).reshape(
            -1, self.identifiability.rank)
        self.mass_weight = 0.0
        if self.mass_row is not None:
            row, mass = self.mass_row
            self.mass_weight = float(design.abs().max()) / max(mass, 1.0)
            design = torch.cat([design, self.mass_weight * (row @ self.basis.T)[None, :]])
        #: equation rows (and the mass row): what the data say; the prior rows follow
        self.n_data_rows = design.shape[0]
        if prior_weight > 0:
            # Gaussian prior at the scaled model on the estimated parameters, relative to their
            # typical size: prior_weight / n_estimated * sum(((pi - prior) / scale)^2), in the
            # units of the objective's tracking term (the rows are divided by ``norm`` there)
            est = self.estimated
            factor = self.norm * (prior_weight / int(est.sum())) ** 0.5
            rows = factor * (self.basis.T[est] / scale.reshape(-1)[est][:, None])
            design = torch.cat([design, rows])
        self.design = design  # (n_residuals, rank)
        self._q = torch.linalg.qr(design).Q  # orthonormal basis of its columns
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
            "of known mass (models.<model>.known_bodies in config.yaml), or a model whose "
            "identifiable bodies carry the subject's mass (subjects.tsv mass_kg)"))

    @property
    def n_residuals(self) -> int:
        return self.design.shape[0]

    def fit_inertia(self, muscle_moments: torch.Tensor) -> InertialFit:
        """Best inertial parameters for muscle moments (samples, dof_rows) at the masked samples."""
        target = self._target(muscle_moments)
        a = self.design
        normal = a.T @ a
        w = torch.linalg.solve(normal, a.T @ target)
        prior_est = self.prior.reshape(-1) * self.estimated
        pi = (prior_est + self.basis.T @ w) + self.prior.reshape(-1) * ~self.estimated
        return InertialFit(pi.reshape(self.prior.shape), a @ w - target, normal)

    def _target(self, muscle_moments: torch.Tensor) -> torch.Tensor:
        lhs = torch.cat([muscle_moments, torch.zeros_like(self.external[:, len(self.dof_rows):])],
                        dim=1) + self.external
        known = self.y @ (self.prior.reshape(-1) * ~self.estimated)
        # unknown part: y @ (prior_est + basis^T w)
        prior_est = self.prior.reshape(-1) * self.estimated
        target = ((lhs - known - self.y @ prior_est) * self.row_weights).reshape(-1)
        if self.mass_row is not None:
            row, mass = self.mass_row
            target = torch.cat([target, self.mass_weight * (mass - row @ prior_est)[None]])
        extra = self.design.shape[0] - self.n_data_rows
        if extra:
            target = torch.cat([target, target.new_zeros(extra)])
        return target

    def moment_rows(self, moment_tangents: torch.Tensor) -> torch.Tensor:
        """d target / d theta (n_residuals, k) for moment tangents (trial, dof, time, k)."""
        d = moment_tangents.permute(0, 2, 1, 3)[self.mask]  # (samples, dofs, k)
        pad = d.new_zeros(d.shape[0], len(self.free_rows), d.shape[2])
        d = torch.cat([d, pad], dim=1) * self.row_weights[None, :, None]
        d = d.reshape(-1, d.shape[-1])
        extra = self.design.shape[0] - d.shape[0]
        if extra:
            d = torch.cat([d, d.new_zeros(extra, d.shape[-1])])
        return d

    def inertial_rows(self) -> torch.Tensor:
        """d residual / d pi of the data rows (n_data_rows, n_bodies * 10), before the
        1 / sqrt(n rows) scale."""
        y = (self.y * self.row_weights[:, None]).reshape(-1, self.y.shape[-1])
        if self.mass_row is not None:
            y = torch.cat([y, self.mass_weight * self.mass_row[0][None, :]])
        return y

    def series(self) -> np.ndarray:
        """Time-series label of each residual: one per (trial, row), the mass row its own."""
        trial = torch.arange(self.mask.shape[0])[:, None].expand_as(self.mask)[self.mask]
        labels = (trial[:, None] * len(self.rows)
                  + torch.arange(len(self.rows))[None, :]).reshape(-1).numpy()
        extra = self.design.shape[0] - labels.size
        if extra:  # the mass row and the prior rows: one label each
            labels = np.append(labels, labels.max(initial=-1) + 1 + np.arange(extra))
        return labels


class EquationErrorTracking:
    """The equation error as the tracking residuals of an
    :class:`~pipeline.calibrate.losses.Objective` (its ``tracking``): for muscle moments, the
    residual of the best inertial parameters, scaled by 1 / sqrt(samples x rows) (variable
    projection). ``projected=False`` gives the partial Jacobian at fixed inertial parameters
    (for the standard errors of the joint fit)."""

    def __init__(self, problem: EquationError, *, projected: bool = True) -> None:
        self.problem = problem
        self.projected = projected
        self.n_residuals = problem.n_residuals

    def residuals(self, moments_nm: torch.Tensor) -> torch.Tensor:
        moments = moments_nm.transpose(1, 2)[self.problem.mask]
        return self.problem.fit_inertia(moments).residual / self.problem.norm

    def jacobian(self, moment_tangents: torch.Tensor) -> torch.Tensor:
        d = self.problem.moment_rows(moment_tangents.to(torch.float64))
        if self.projected:  # r = -(I - P) target: A is fixed, so this is exact
            q = self.problem._q
            d = d - q @ (q.T @ d)
        return -d / self.problem.norm

    def series(self) -> np.ndarray:
        return self.problem.series()


def _parameter_scale(pi: torch.Tensor) -> torch.Tensor:
    """Typical magnitude of each inertial parameter of each body (for unit-free rank tests)."""
    mass = pi[:, 0].abs().clamp_min(1e-3)
    inertia = pi[:, 4:7].abs().mean(dim=1).clamp_min(1e-6)
    length = (inertia / mass).sqrt()
    return torch.stack([mass, *(mass * length,) * 3, *(inertia,) * 6], dim=1)


@dataclass(frozen=True)
class MotionUncertainty:
    """Standard errors of the joint fit (muscle parameters and inertial parameters).

    ``sigma2`` (the weighted residuals' variance times their autocorrelation time) times
    ``(J^T J)^+`` restricted to the directions the data determine (rank ``rank`` of
    ``n_parameters``; column-scaled). A quantity whose gradient leaves that space is not
    identifiable: its standard error is NaN and its flag False, never a small number.
    Per body: ``body_values``/``body_se``/``body_identifiable`` (n_bodies, 10) hold mass (kg),
    centre of mass (3, m, body frame) and inertia about it (6: xx yy zz xy xz yz, kg m^2);
    ``known`` bodies were given (anchor payloads).
    """

    muscle_se: np.ndarray
    muscle_identifiable: np.ndarray
    pi_se: np.ndarray
    pi_identifiable: np.ndarray
    body_values: np.ndarray
    body_se: np.ndarray
    body_identifiable: np.ndarray
    known: np.ndarray
    combination_se: np.ndarray  #: (rank of the regressor,) of ``problem.basis @ pi``
    sigma2: float
    autocorrelation_time: float
    rank: int
    n_parameters: int


BODY_QUANTITIES = ("mass_kg", "mass_center_m", "inertia_kg_m2")


def physical_parameters(pi: torch.Tensor) -> torch.Tensor:
    """(..., 10) inertial parameters -> mass, centre of mass (3) and the inertia about the centre
    of mass (xx, yy, zz, xy, xz, yz) in the body frame, as OpenSim's Body holds them."""
    m = pi[..., 0]
    h = pi[..., 1:4]
    com = h / m[..., None]
    hh = (h * h).sum(-1)
    parallel = torch.stack([hh - h[..., 0] ** 2, hh - h[..., 1] ** 2, hh - h[..., 2] ** 2,
                            -h[..., 0] * h[..., 1], -h[..., 0] * h[..., 2],
                            -h[..., 1] * h[..., 2]], -1) / m[..., None]
    return torch.cat([m[..., None], com, pi[..., 4:10] - parallel], -1)


def inertial_from_physical(values: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`physical_parameters`."""
    m = values[..., 0]
    h = values[..., 1:4] * m[..., None]
    hh = (h * h).sum(-1)
    parallel = torch.stack([hh - h[..., 0] ** 2, hh - h[..., 1] ** 2, hh - h[..., 2] ** 2,
                            -h[..., 0] * h[..., 1], -h[..., 0] * h[..., 2],
                            -h[..., 1] * h[..., 2]], -1) / m[..., None]
    return torch.cat([m[..., None], h, values[..., 4:10] + parallel], -1)


def motion_uncertainty(problem: EquationError, objective: Objective, p: np.ndarray, /, *,
                       rcond: float = 1e-8, span_tolerance: float = 1e-6) -> MotionUncertainty:
    """Standard errors at the solution ``p`` of the muscle parameters and of the inertial
    parameters of ``problem.fit_inertia`` (see :class:`MotionUncertainty`).

    ``objective`` is the equation-error objective (its ``tracking`` an
    :class:`EquationErrorTracking` of ``problem``); ``rcond``: singular values below ``rcond``
    times the largest (of the column-scaled Jacobian) count as zero.
    """
    from pipeline.calibrate.identifiability import autocorrelation_time

    p_t = torch.as_tensor(p, dtype=torch.float64)
    partial = Objective(objective.spec, objective.data, tendon=objective.tendon,
                        emd_s=objective.emd_s,
                        tracking=EquationErrorTracking(problem, projected=False))
    residuals, jac_full = partial.residuals_and_jacobian(p_t)
    n = problem.n_data_rows  # the data alone (not the prior rows)
    r = residuals[:n].numpy()
    est = problem.estimated.numpy()
    j_p = jac_full[:n]
    j_pi = (problem.inertial_rows() / problem.norm).numpy()[:, est]
    jac = np.concatenate([j_p, j_pi], axis=1)
    n_free = j_p.shape[1]
    scale = np.concatenate([np.maximum(np.abs(np.asarray(p, float)), 1e-12),
                            _parameter_scale(problem.prior).reshape(-1).numpy()[est]])
    _, s, vt = np.linalg.svd(jac * scale, full_matrices=False)
    rank = int(np.sum(s > rcond * s[0])) if s.size and s[0] > 0 else 0
    v = vt[:rank].T
    tau = autocorrelation_time(r, problem.series()[:n])
    sigma2 = float(r @ r) / max(n - rank, 1) * tau

    def se(gradients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standard errors and flags of quantities with these gradients (k, n_parameters)."""
        g = gradients * scale
        norm = np.linalg.norm(g, axis=1)
        coords = g @ v
        outside = np.linalg.norm(g - coords @ v.T, axis=1)
        ok = outside <= span_tolerance * np.maximum(norm, np.finfo(float).tiny)
        var = sigma2 * ((coords / s[:rank]) ** 2).sum(axis=1)
        return np.where(ok, np.sqrt(var), np.nan), ok

    muscle_se, muscle_ok = se(np.eye(n_free, jac.shape[1]))
    nb = problem.skeleton.n_bodies
    pi_hat = problem.fit_inertia(_moments(objective, p_t, problem)).pi
    # gradients over (p, pi_estimated); known parameters contribute nothing
    pi_grad = np.zeros((nb * 10, jac.shape[1]))
    pi_grad[np.flatnonzero(est), n_free + np.arange(int(est.sum()))] = 1.0
    pi_se, pi_ok = se(pi_grad)
    combination_se, _ = se(problem.basis.numpy() @ pi_grad)
    known = np.asarray(~est.reshape(nb, 10).any(axis=1))
    pi_se = np.where(est, pi_se, 0.0)
    pi_ok = np.where(est, pi_ok, True)
    values = physical_parameters(pi_hat.detach())
    body_se = np.zeros((nb, 10))
    body_ok = np.ones((nb, 10), bool)
    for b in range(nb):
        d = torch.func.jacrev(physical_parameters)(pi_hat[b].detach()).numpy()  # (10, 10)
        grad = d @ pi_grad[10 * b:10 * b + 10]
        body_se[b], body_ok[b] = se(grad)
        zero = ~np.abs(grad).any(axis=1)  # known bodies
        body_se[b][zero], body_ok[b][zero] = 0.0, True
    return MotionUncertainty(muscle_se, muscle_ok, pi_se.reshape(nb, 10), pi_ok.reshape(nb, 10),
                             values.numpy(), body_se, body_ok, known, combination_se, sigma2,
                             tau, rank,
                             jac.shape[1])


def _moments(objective: Objective, p: torch.Tensor, problem: EquationError) -> torch.Tensor:
    with torch.no_grad():
        out = objective.simulate(p)
    return out.moments_nm.transpose(1, 2)[problem.mask]


def identify(problem: EquationError, objective: Objective, p0: np.ndarray, /, *,
             max_evaluations: int = 60, tolerance: float = 1e-12):
    """Muscle parameters by the project's least-squares solver on the equation error (exact
    Jacobian), then the inertial parameters they imply and the standard errors of both.

    Returns ``(solved, fit, uncertainty)``: the solver's
    :class:`~pipeline.calibrate.least_squares.LeastSquaresResult`, the :class:`InertialFit` and
    the :class:`MotionUncertainty`.
    """
    from pipeline.calibrate.least_squares import solve_least_squares

    if not isinstance(objective.tracking, EquationErrorTracking) or \
            objective.tracking.problem is not problem:
        raise ValueError("the objective must track this problem's equation error")
    solved = solve_least_squares(objective, p0, max_evaluations=max_evaluations,
                                 tolerance=tolerance)
    p_t = torch.as_tensor(solved.p, dtype=torch.float64)
    fit = problem.fit_inertia(_moments(objective, p_t, problem))
    return solved, fit, motion_uncertainty(problem, objective, solved.p)
