"""Output-error refinement of the ``motion`` method: fit by simulating the skeleton (Diff-MSM).

The equation error (:mod:`pipeline.dynamics.identify`) asks the muscle moments to equal what the
measured motion needs; the output error asks the motion that the muscle moments PRODUCE to equal
the measured one. The muscle-driven coordinates are forward-simulated under

    M_ff qdd_f = tau_muscle,f + (J^T F_ext)_f - bias_f(q, qd) - M_fc qdd_c

where ``f`` are the calibrated DOFs and ``c`` every other coordinate, which follows its measured
motion (prescribed: no muscle of the model drives it). Multiple shooting keeps long trials stable:
the trials are cut into segments of ``segment_s``; each starts from the measured state, all are
simulated as one batch, and the error is taken at every sample, so each segment must meet the
measured motion along its way (continuity with the next segment's start is then implied).

Muscle-tendon lengths and moment arms are those along the measured motion (the workflow's muscle
analysis), and the external loads are applied as measured: within a short segment the simulated
motion stays near the measured one. The muscle moments, the loads and the prescribed
coordinates are interpolated between samples by cubic (Catmull-Rom) splines.

The residuals are ``(q_sim - q_measured) / sd(q_measured)`` per driven coordinate, over all
simulated samples, scaled so that their sum of squares is the mean over them: unit-free, like the
variance-weighted moment tracking, so the operating-range penalties keep their weight. They are
the ``tracking`` of an :class:`~pipeline.calibrate.losses.Objective`, so the project's bounded
least-squares solver fits the muscle parameters together with the identifiable inertial
combinations, with an exact Jacobian (forward mode through the simulation, one batch).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.autograd import forward_ad

from pipeline.calibrate.losses import Objective
from pipeline.dynamics.forward import INTEGRATORS, Integrator, check_unconstrained
from pipeline.dynamics.identify import EquationError, MotionTrials
from pipeline.dynamics.skeleton import Skeleton, mass_matrix_and_bias, regressor
from pipeline.errors import CalibrationError, describe

log = logging.getLogger(__name__)

#: smallest standard deviation of a driven coordinate used to normalise its error (1 degree)
MIN_ANGLE_SD_RAD = math.radians(1.0)


@dataclass(frozen=True)
class ShootingSettings:
    """``calibration.motion`` settings of the output-error refinement."""

    segment_s: float = 0.1
    integrator: Integrator = "rk4"
    substeps: int = 1  #: integration steps per sample interval
    max_evaluations: int = 60

    @classmethod
    def from_config(cls, motion: dict[str, Any], *, source: str | None = None
                    ) -> ShootingSettings:
        out = cls(segment_s=float(motion.get("segment_s", cls.segment_s)),
                  integrator=motion.get("integrator", cls.integrator),
                  substeps=int(motion.get("substeps", cls.substeps)),
                  max_evaluations=int(motion.get("simulate_max_evaluations",
                                                 cls.max_evaluations)))
        if out.integrator not in INTEGRATORS:
            raise CalibrationError(describe(source, f"calibration.motion.integrator is "
                                            f"{out.integrator!r}", f"use one of {INTEGRATORS}"))
        if not out.segment_s > 0 or out.substeps < 1:
            raise CalibrationError(describe(source, "calibration.motion.segment_s must be > 0 and "
                                            "substeps >= 1", "fix calibration.motion"))
        return out


def segment_starts(mask: torch.Tensor, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(trial, first sample) of every segment of ``samples`` intervals inside the valid runs of
    ``mask`` (trial, time)."""
    trials, firsts = [], []
    m = mask.cpu().numpy().astype(bool)
    for i, row in enumerate(m):
        padded = np.concatenate([[False], row, [False]])
        edges = np.flatnonzero(np.diff(padded.astype(int)))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):  # run [start, stop)
            for first in range(start, stop - samples, samples):
                trials.append(i)
                firsts.append(first)
    return np.asarray(trials, dtype=np.int64), np.asarray(firsts, dtype=np.int64)


def cubic(x: torch.Tensor, k: int, s: float) -> torch.Tensor:
    """``x[:, k + s]`` of samples ``x`` (batch, time, ...) by Catmull-Rom interpolation (cubic,
    through the samples, slopes from the neighbours ``k - 1`` and ``k + 2``)."""
    if s == 0.0:
        return x[:, k]
    p0, p1, p2, p3 = x[:, k - 1], x[:, k], x[:, k + 1], x[:, k + 2]
    return p1 + 0.5 * s * ((p2 - p0) + s * ((2 * p0 - 5 * p1 + 4 * p2 - p3)
                                            + s * (3 * (p1 - p2) + p3 - p0)))


def catmull_rom_weights(s: float) -> tuple[float, float, float, float]:
    """The weights of samples ``k - 1 .. k + 2`` in :func:`cubic` at ``k + s``."""
    return (0.5 * (-s + 2 * s * s - s ** 3), 1.0 + 0.5 * (3 * s ** 3 - 5 * s * s),
            0.5 * (s + 4 * s * s - 3 * s ** 3), 0.5 * (s ** 3 - s * s))


class ShootingProblem:
    """Segments of the measured motion and their simulation (see the module docstring)."""

    def __init__(self, skeleton: Skeleton, motion: MotionTrials, dof_names: Sequence[str], *,
                 mask: torch.Tensor, dt_s: float, settings: ShootingSettings = ShootingSettings(),
                 source: str | None = None) -> None:
        check_unconstrained(skeleton)
        self.skeleton = skeleton
        self.settings = settings
        index = {name: i for i, name in enumerate(skeleton.coordinates)}
        self.driven = [index[d] for d in dof_names]
        self.other = [i for i in range(skeleton.n_coordinates) if i not in self.driven]
        self.order = torch.as_tensor(np.argsort(self.driven + self.other))
        self.dt_s = float(dt_s)
        self.samples = max(1, round(settings.segment_s / self.dt_s))
        trials, firsts = segment_starts(mask.to(torch.bool), self.samples)
        if trials.size == 0:
            raise CalibrationError(describe(
                source, f"no calibration window holds a {settings.segment_s:g} s shooting segment",
                "shorten calibration.motion.segment_s or lengthen the calibration windows"))
        idx = torch.as_tensor(firsts[:, None] + np.arange(self.samples + 1)[None, :])
        tr = torch.as_tensor(trials)[:, None]
        self.trial_index, self.sample_index = tr, idx
        # with one neighbour either side (clamped to the trial) for cubic interpolation
        wide = torch.as_tensor(np.clip(firsts[:, None] + np.arange(-1, self.samples + 2)[None, :],
                                       0, motion.q.shape[1] - 1))
        self.wide_index = wide

        def cut(x: torch.Tensor) -> torch.Tensor:  # (trial, time, ...) -> (seg, S + 3, ...)
            return x[tr, wide]

        self.q, self.qd, self.qdd = cut(motion.q), cut(motion.qd), cut(motion.qdd)
        self.external = cut(motion.external)[..., self.driven]
        self.measured = motion.q[tr, idx][..., self.driven]  # (seg, S + 1, n_driven)
        measured = motion.q[..., self.driven][mask.to(torch.bool)]
        self.sd = measured.std(dim=0).clamp_min(MIN_ANGLE_SD_RAD)
        self.n_segments = int(trials.size)
        self.n_residuals = self.n_segments * self.samples * len(self.driven)
        self.norm = math.sqrt(self.n_residuals)

    def moments(self, moments_nm: torch.Tensor, dof_rows: Sequence[int]) -> torch.Tensor:
        """The driven coordinates' muscle moments (seg, S + 3, n_driven: one sample before and
        after each segment) from the muscle model's (trial, dof, time) ones, whose DOF
        ``dof_rows[k]`` is driven coordinate ``k``."""
        return moments_nm[:, list(dof_rows), :].transpose(1, 2)[self.trial_index,
                                                                 self.wide_index]

    def simulate(self, tau: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        """Driven coordinates (seg, S, n_driven) simulated from each segment's measured start
        under muscle moments ``tau`` (seg, S + 3, n_driven) and inertial parameters ``pi``
        (n_bodies, 10)."""
        return self._integrate(tau, pi, None)[0]

    def trajectory(self, tau: torch.Tensor, pi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Driven coordinates and speeds (seg, S, n_driven) of :meth:`simulate`."""
        q, _, qd = self._integrate(tau, pi, None)
        return q, qd

    def simulate_with_tangents(self, tau: torch.Tensor, pi: torch.Tensor,
                               basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`simulate` and the exact derivatives of its result (seg, S, n_driven, d) with
        respect to each segment's own moments (the first (S + 3) * n_driven of the d directions,
        ``tau``'s samples flattened) and to the inertial combinations ``w`` of
        ``pi + basis^T w`` (the last ``basis.shape[0]``).

        The derivative of the discrete integrator itself (not of the continuous motion): the
        tangents go through every stage by the chain rule, with the stage's state Jacobian from
        dual numbers (2 n_driven directions), its moment derivative M_ff^-1 times the
        interpolation weights, and its inertial derivative -M_ff^-1 Y_f basis^T (the dynamics
        are linear in the inertial parameters)."""
        q, tangents, _ = self._integrate(tau, pi, basis)
        assert tangents is not None
        return q, tangents

    def _acceleration(self, k: int, s: float, qf: torch.Tensor, qdf: torch.Tensor,
                      tau: torch.Tensor, pi: torch.Tensor, repeat: int = 1):
        """qdd_f at sample ``k + s`` of the segments; with the state (q, qd, qdd) and M_ff.
        ``repeat`` copies of the segments may be stacked in ``qf``/``qdf``/``tau``."""
        drv, oth = self.driven, self.other

        def at(x: torch.Tensor) -> torch.Tensor:
            x = cubic(x, k + 1, s)
            return x if repeat == 1 else x.repeat(repeat, *(1,) * (x.dim() - 1))

        q_m, qd_m, qdd_m = at(self.q), at(self.qd), at(self.qdd)
        q = torch.cat([qf, q_m[:, oth]], -1)[:, self.order]
        qd = torch.cat([qdf, qd_m[:, oth]], -1)[:, self.order]
        mass, bias = mass_matrix_and_bias(self.skeleton, q, qd, inertial=pi)
        m_ff = mass[:, drv][:, :, drv]
        rhs = cubic(tau, k + 1, s) + at(self.external) - bias[:, drv]
        if oth:
            rhs = rhs - (mass[:, drv][:, :, oth] @ qdd_m[:, oth, None])[..., 0]
        acc = torch.linalg.solve(m_ff, rhs)
        qdd = torch.cat([acc, qdd_m[:, oth]], -1)[:, self.order]
        return acc, q, qd, qdd, m_ff

    def _stage(self, k: int, s: float, qf: torch.Tensor, qdf: torch.Tensor, tau: torch.Tensor,
               pi: torch.Tensor, basis: torch.Tensor | None,
               dq: torch.Tensor | None, dv: torch.Tensor | None):
        """Acceleration at a stage and, with ``basis``, its tangents (seg, n_driven, d) for the
        state tangents ``dq``, ``dv``."""
        if basis is None or dq is None or dv is None:
            return self._acceleration(k, s, qf, qdf, tau, pi)[0], None
        n_seg, nf = qf.shape
        eye = torch.eye(2 * nf, dtype=qf.dtype).repeat_interleave(n_seg, 0)
        with forward_ad.dual_level():
            acc_dual, q, qd, qdd, m_ff = self._acceleration(
                k, s, forward_ad.make_dual(qf.repeat(2 * nf, 1), eye[:, :nf]),
                forward_ad.make_dual(qdf.repeat(2 * nf, 1), eye[:, nf:]),
                tau.repeat(2 * nf, 1, 1), pi, repeat=2 * nf)
            unpacked = forward_ad.unpack_dual(acc_dual)
            acc, a_tan = unpacked.primal[:n_seg], unpacked.tangent
            q, qd, qdd, m_ff = (forward_ad.unpack_dual(x).primal[:n_seg]
                                for x in (q, qd, qdd, m_ff))
        a_state = a_tan.reshape(2 * nf, n_seg, nf).permute(1, 2, 0)  # (seg, nf, 2 nf)
        m_inv = torch.linalg.inv(m_ff)
        weights = catmull_rom_weights(s)
        g_tau = tau.new_zeros(n_seg, nf, tau.shape[1], nf)
        for j, c in enumerate(weights):
            if c != 0.0:
                g_tau[:, :, k + j] += c * m_inv
        y_f = regressor(self.skeleton, q, qd, qdd)[:, self.driven]  # (seg, nf, P)
        g_pi = -m_inv @ (y_f @ basis.T)
        direct = torch.cat([g_tau.reshape(n_seg, nf, -1), g_pi], -1)
        return acc, a_state[:, :, :nf] @ dq + a_state[:, :, nf:] @ dv + direct

    def _integrate(self, tau: torch.Tensor, pi: torch.Tensor, basis: torch.Tensor | None):
        drv = self.driven
        substeps = self.settings.substeps
        h = self.dt_s / substeps
        qf, qdf = self.q[:, 1, drv], self.qd[:, 1, drv]
        dq = dv = None
        if basis is not None:
            d = tau.shape[1] * tau.shape[2] + basis.shape[0]
            dq, dv = (qf.new_zeros(*qf.shape, d) for _ in range(2))

        def add(x, dx, c, y, dy):  # x + c y and its tangent
            return x + c * y, None if dx is None else dx + c * dy

        out: list[torch.Tensor] = []
        out_tan: list[torch.Tensor] = []
        out_speed: list[torch.Tensor] = []
        for k in range(self.samples):
            for j in range(substeps):
                s0 = j / substeps
                if self.settings.integrator == "euler":  # semi-implicit
                    a, da = self._stage(k, s0, qf, qdf, tau, pi, basis, dq, dv)
                    qdf, dv = add(qdf, dv, h, a, da)
                    qf, dq = add(qf, dq, h, qdf, dv)
                    continue
                half, end = s0 + 0.5 / substeps, s0 + 1.0 / substeps
                a1, da1 = self._stage(k, s0, qf, qdf, tau, pi, basis, dq, dv)
                q2, dq2 = add(qf, dq, 0.5 * h, qdf, dv)
                v2, dv2 = add(qdf, dv, 0.5 * h, a1, da1)
                a2, da2 = self._stage(k, half, q2, v2, tau, pi, basis, dq2, dv2)
                q3, dq3 = add(qf, dq, 0.5 * h, v2, dv2)
                v3, dv3 = add(qdf, dv, 0.5 * h, a2, da2)
                a3, da3 = self._stage(k, half, q3, v3, tau, pi, basis, dq3, dv3)
                q4, dq4 = add(qf, dq, h, v3, dv3)
                v4, dv4 = add(qdf, dv, h, a3, da3)
                a4, da4 = self._stage(k, end, q4, v4, tau, pi, basis, dq4, dv4)
                qf = qf + h / 6 * (qdf + 2 * v2 + 2 * v3 + v4)
                qdf = qdf + h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
                if dq is not None:
                    dq = dq + h / 6 * (dv + 2 * dv2 + 2 * dv3 + dv4)
                    dv = dv + h / 6 * (da1 + 2 * da2 + 2 * da3 + da4)
            out.append(qf)
            if dq is not None:
                out_tan.append(dq)
            out_speed.append(qdf)
        return (torch.stack(out, 1), None if basis is None else torch.stack(out_tan, 1),
                torch.stack(out_speed, 1))

    def residuals(self, tau: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        """(seg, S, n_driven) normalised errors (see the module docstring)."""
        return (self.simulate(tau, pi) - self.measured[:, 1:]) / self.sd / self.norm

    def angle_rmse_deg(self, tau: torch.Tensor, pi: torch.Tensor) -> np.ndarray:
        """Per driven coordinate, the RMS joint-angle error of the simulation (degrees)."""
        with torch.no_grad():
            err = self.simulate(tau, pi) - self.measured[:, 1:]
        return np.degrees(err.pow(2).mean(dim=(0, 1)).sqrt().numpy())


class OutputErrorTracking:
    """The output error as the tracking residuals of an :class:`Objective` (see
    :class:`~pipeline.calibrate.losses.TrackingMap`), at inertial parameters
    ``prior + basis^T w`` with ``w`` settable (the identifiable combinations)."""

    def __init__(self, shooting: ShootingProblem, equation: EquationError, pi0: torch.Tensor,
                 dof_rows: Sequence[int]) -> None:
        self.shooting = shooting
        self.basis = equation.basis  # (rank, n_bodies * 10)
        self.pi0 = pi0.reshape(-1).to(torch.float64)
        self.dof_rows = list(dof_rows)
        self.n_residuals = shooting.n_residuals
        self.w = torch.zeros(self.basis.shape[0], dtype=torch.float64)
        self._tau: torch.Tensor | None = None
        self._sensitivity: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def pi(self) -> torch.Tensor:
        return (self.pi0 + self.basis.T @ self.w).reshape(-1, 10)

    def set_combinations(self, w: np.ndarray | torch.Tensor) -> None:
        w = torch.as_tensor(w, dtype=torch.float64)
        if not torch.equal(w, self.w):
            self.w = w.clone()
            self._sensitivity = None

    def residuals(self, moments_nm: torch.Tensor) -> torch.Tensor:
        tau = self.shooting.moments(moments_nm.detach(), self.dof_rows)
        if self._tau is None or not torch.equal(tau, self._tau):
            self._tau, self._sensitivity = tau, None
        return self.shooting.residuals(tau, self.pi).reshape(-1)

    def sensitivity(self) -> tuple[torch.Tensor, torch.Tensor]:
        """d residuals / d moments, per segment ((S + 3) * n_driven local directions ->
        (directions, seg, S, n_driven)), and d residuals / d w ((rank, seg, S, n_driven)), at the
        last moments given to :meth:`residuals`, by
        :meth:`ShootingProblem.simulate_with_tangents` (segments are independent, so one local
        direction serves all of them at once)."""
        if self._sensitivity is not None:
            return self._sensitivity
        if self._tau is None:
            raise RuntimeError("residuals() must be evaluated before the Jacobian")
        tau = self._tau
        n_local = tau.shape[1] * tau.shape[2]
        seg = self.shooting
        _, tangent = seg.simulate_with_tangents(tau, self.pi.detach(), self.basis)
        out = (tangent / seg.sd[:, None] / seg.norm).permute(3, 0, 1, 2)  # (d, seg, S, nf)
        self._sensitivity = (out[:n_local], out[n_local:])
        return self._sensitivity

    def jacobian(self, moment_tangents: torch.Tensor) -> torch.Tensor:
        local, _ = self.sensitivity()
        seg = self.shooting
        t = moment_tangents.to(torch.float64)[:, self.dof_rows]  # (trial, driven, time, k)
        t = t.permute(0, 2, 1, 3)[seg.trial_index, seg.wide_index]  # (seg, S+3, driven, k)
        t = t.reshape(t.shape[0], -1, t.shape[-1])  # (seg, local, k)
        out = torch.einsum("lnsd,nlk->nsdk", local, t)
        return out.reshape(-1, out.shape[-1])

    def combination_jacobian(self) -> torch.Tensor:
        """d residuals / d w (n_residuals, rank)."""
        _, dw = self.sensitivity()
        return dw.reshape(dw.shape[0], -1).T

    def series(self) -> np.ndarray:
        """One label per (segment, driven coordinate), samples in time order."""
        seg = self.shooting
        n_seg, n_drv = seg.n_segments, len(seg.driven)
        labels = np.arange(n_seg)[:, None, None] * n_drv + np.arange(n_drv)[None, None, :]
        return np.broadcast_to(labels, (n_seg, seg.samples, n_drv)).reshape(-1).copy()


@dataclass
class _Bounds:
    lower: np.ndarray
    upper: np.ndarray


class JointOutputError:
    """Muscle parameters and identifiable inertial combinations together, as one least-squares
    problem for :func:`~pipeline.calibrate.least_squares.solve_least_squares`: ``x = (p, w)``."""

    def __init__(self, objective: Objective, tracking: OutputErrorTracking,
                 w_lower: np.ndarray, w_upper: np.ndarray) -> None:
        self.objective = objective
        self.tracking = tracking
        self.n_free = objective.spec.n_free
        self.spec = _Bounds(np.concatenate([objective.spec.lower, w_lower]),
                            np.concatenate([objective.spec.upper, w_upper]))
        self.n_tracking_residuals = objective.n_tracking_residuals

    def all_residuals(self, x: torch.Tensor) -> torch.Tensor:
        self.tracking.set_combinations(x[self.n_free:])
        return self.objective.all_residuals(x[:self.n_free])

    def residuals_and_jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        self.tracking.set_combinations(x[self.n_free:])
        r, j_p = self.objective.residuals_and_jacobian(x[:self.n_free])
        j_w = np.zeros((j_p.shape[0], x.numel() - self.n_free))
        j_w[:self.n_tracking_residuals] = self.tracking.combination_jacobian().numpy()
        return r, np.concatenate([j_p, j_w], axis=1)


@dataclass
class OutputErrorOutcome:
    p: np.ndarray
    pi: torch.Tensor  #: (n_bodies, 10)
    loss_before: float
    loss: float
    angle_rmse_deg_before: np.ndarray
    angle_rmse_deg: np.ndarray
    evaluations: int
    wall_s: float
    stopped: str
    segments: int
    segment_samples: int
    settings: ShootingSettings
    history: list[dict[str, float]] = field(default_factory=list)


def refine_output_error(objective: Objective, equation: EquationError, motion: MotionTrials,
                        p0: np.ndarray, pi0: torch.Tensor, *, settings: ShootingSettings,
                        tolerance: float = 1e-10, source: str | None = None
                        ) -> OutputErrorOutcome:
    """Refine muscle parameters ``p0`` and inertial parameters ``pi0`` (the equation error's
    solution) by output error. ``objective`` is the equation-error objective (its spec, data,
    tendon and penalties are kept; its tracking is replaced)."""
    from pipeline.calibrate.least_squares import solve_least_squares

    start = time.perf_counter()
    data = objective.data
    driven = [equation.skeleton.coordinates[r] for r in equation.dof_rows]
    shooting = ShootingProblem(equation.skeleton, motion, driven, mask=equation.mask,
                               dt_s=data.dt_s, settings=settings, source=source)
    tracking = OutputErrorTracking(shooting, equation, pi0, range(len(data.dof_names)))
    out_objective = Objective(objective.spec, data, tendon=objective.tendon,
                              emd_s=objective.emd_s, penalties=objective.penalties,
                              prior_weight=objective.prior_weight, tracking=tracking)
    # each combination may move by its own size (and the prior's) either way
    sizes = torch.maximum((equation.basis @ pi0.reshape(-1)).abs(),
                          (equation.basis @ equation.prior.reshape(-1)).abs())
    w_size = sizes.clamp_min(1e-6).numpy()
    problem = JointOutputError(out_objective, tracking, -w_size, w_size)
    x0 = np.concatenate([np.asarray(p0, float), np.zeros(w_size.size)])
    p_t = torch.as_tensor(p0, dtype=torch.float64)
    with torch.no_grad():
        tau0 = shooting.moments(out_objective.simulate(p_t).moments_nm, tracking.dof_rows)
    rmse0 = shooting.angle_rmse_deg(tau0, tracking.pi)
    if not np.all(np.isfinite(rmse0)):
        raise CalibrationError(describe(
            source, "the output-error simulation diverges from the equation error's solution: "
            "its segment inertias leave the mass matrix singular or indefinite along the motion",
            "raise calibration.motion.inertia_prior_weight (it keeps the segments near the "
            "scaled model), add richer calibration trials, or set calibration.motion.simulate: "
            "false"))
    history: list[dict[str, float]] = []
    solved = solve_least_squares(problem, x0, max_evaluations=settings.max_evaluations,
                                 tolerance=tolerance, history=history)
    p = solved.p[:problem.n_free]
    tracking.set_combinations(solved.p[problem.n_free:])
    pi = tracking.pi.detach()
    with torch.no_grad():
        tau = shooting.moments(out_objective.simulate(torch.as_tensor(p, dtype=torch.float64))
                               .moments_nm, tracking.dof_rows)
    rmse = shooting.angle_rmse_deg(tau, pi)
    wall = time.perf_counter() - start
    log.info("motion, output error (%d segments of %d samples, %s): joint-angle RMSE %s -> %s "
             "deg, %d evaluations, %.1f s (stopped: %s)", shooting.n_segments, shooting.samples,
             settings.integrator, np.round(rmse0, 3).tolist(), np.round(rmse, 3).tolist(),
             solved.evaluations, wall, solved.stopped)
    loss0 = history[0]["loss"] if history else math.nan
    return OutputErrorOutcome(p, pi, loss0, solved.loss, rmse0, rmse, solved.evaluations, wall,
                              solved.stopped, shooting.n_segments, shooting.samples, settings,
                              history)
