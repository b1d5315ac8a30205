"""The calibration objective (paper 002, eq. 4): moment tracking plus operating-range penalties.

    F = sum_t 1/N_i sum_i [ 1/N_d sum_d w_d (M_ID - M)^2 + sum_m (P_l(l~) + P_eps(eps_T)) ]

with ``w_d = 1 / var(M_ID,d)`` when ``normalise_by_variance`` (as CEINMS does) else 1, and
``P(x) = w (x_min - x)^2`` below ``x_min``, ``w (x - x_max)^2`` above ``x_max``, 0 inside. Padded
samples (see :mod:`pipeline.calibrate.problem`) are masked out.

An optional prior (``prior_weight`` > 0, config ``calibration.prior_weight``) adds

    w_p / N_p sum_k ((p_k - p0_k) / (upper_k - lower_k))^2

over the free parameters: a Gaussian prior at the initial (scaled-model) values whose width is the
bounds' span. With noisy EMG it keeps parameters the data cannot determine near the generic model
(a maximum a posteriori estimate) while well-determined parameters move; it is part of the
objective, so every optimiser (least squares, AdamW, annealing) minimises the same function.

The same code serves gradient calibration (with autograd), annealing (under ``torch.no_grad``) and
execution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.spec import ParameterSpec
from pipeline.nms import DEFAULT_EMD_S, ModelOutput, MuscleParameters, simulate
from pipeline.nms.model import TendonModel


@dataclass(frozen=True)
class PenaltyRange:
    lower: float
    upper: float
    weight: float


DEFAULT_PENALTIES = {"fiber_length": PenaltyRange(0.5, 1.5, 100.0),
                     "tendon_strain": PenaltyRange(0.0, 0.1, 100.0)}


def penalties_from_config(cfg: Mapping[str, Any] | None) -> dict[str, PenaltyRange]:
    out = dict(DEFAULT_PENALTIES)
    for key, value in (cfg or {}).items():
        out[key] = PenaltyRange(float(value["lower"]), float(value["upper"]),
                                float(value["weight"]))
    return out


def range_penalty(x: torch.Tensor, /, *, lower: float, upper: float, weight: float
                  ) -> torch.Tensor:
    """Elementwise ``P(x)``: ``w (lower - x)^2`` below, ``w (x - upper)^2`` above, else 0."""
    return weight * (torch.relu(lower - x) ** 2 + torch.relu(x - upper) ** 2)


#: Exceptions the model raises where it cannot be evaluated (treated as an infinite loss).
MODEL_FAILURES = (ArithmeticError, ValueError, RuntimeError)


class LossTerms(NamedTuple):
    total: torch.Tensor
    tracking: torch.Tensor
    penalty: torch.Tensor


class TrackingMap(Protocol):
    """Tracking residuals other than inverse-dynamics moment tracking (e.g. the equation error of
    :mod:`pipeline.dynamics.identify`), affine in the muscle moments."""

    n_residuals: int

    def residuals(self, moments_nm: torch.Tensor) -> torch.Tensor:
        """Moments ``(trial, dof, time)`` -> residuals ``(n_residuals,)``."""

    def jacobian(self, moment_tangents: torch.Tensor) -> torch.Tensor:
        """Moment tangents ``(trial, dof, time, k)`` -> residual tangents ``(n_residuals, k)``."""

    def series(self) -> np.ndarray:
        """``(n_residuals,)`` time-series label of each residual (in time order per label)."""


class Objective:
    """Loss of free physical parameters ``p`` (``(n_free,)``) on one batch of trials.

    ``tracking`` replaces inverse-dynamics moment tracking with other residuals of the muscle
    moments (the operating-range penalties and the prior stay).
    """

    def __init__(self, spec: ParameterSpec, data: TrialBatch, *, tendon: TendonModel = "elastic",
                 emd_s: float = DEFAULT_EMD_S, normalise_by_variance: bool = True,
                 penalties: Mapping[str, PenaltyRange] | None = None,
                 dof_weights: np.ndarray | None = None, prior_weight: float = 0.0,
                 tracking: TrackingMap | None = None) -> None:
        if spec.mtu_names != data.mtu_names:
            raise ValueError("spec and data must list the same MTUs in the same order")
        self.spec = spec
        self.data = data
        self.tendon = tendon
        self.emd_s = float(emd_s)
        self.penalties = dict(penalties or DEFAULT_PENALTIES)
        if not prior_weight >= 0.0:
            raise ValueError(f"prior_weight must be >= 0, got {prior_weight}")
        self.prior_weight = float(prior_weight)
        self.tracking = tracking
        if dof_weights is None:
            dof_weights = (variance_weights(data) if normalise_by_variance
                           else np.ones(len(data.dof_names)))
        #: where the model runs: the device of the data (``calibration.device``)
        self.device = data.excitation.device
        self.dof_weights = torch.as_tensor(dof_weights, dtype=torch.float64, device=self.device)
        mask = data.mask.to(torch.float64)
        #: (trial, time) weights 1/N_i on valid samples, 0 on padding.
        self.time_weights = mask / mask.sum(dim=1, keepdim=True)
        self._fixed = {
            "max_isometric_force_n": torch.as_tensor(spec.muscles.max_isometric_force_n,
                                                     dtype=torch.float64, device=self.device),
            "pennation_at_optimal_rad": torch.as_tensor(spec.muscles.pennation_angle_rad,
                                                        dtype=torch.float64, device=self.device),
        }

    def muscle_parameters(self, p: torch.Tensor) -> MuscleParameters:
        full = self.spec.expand(p.to(self.device))
        return MuscleParameters(
            c1=full["c1"], c2=full["c2"], shape_factor=full["shape_factor"],
            optimal_fiber_length_m=full["optimal_fiber_length"],
            tendon_slack_length_m=full["tendon_slack_length"], strength=full["strength"],
            damping=full["damping"], **self._fixed)

    def simulate(self, p: torch.Tensor, data: TrialBatch | None = None) -> ModelOutput:
        data = data or self.data
        return simulate(self.muscle_parameters(p), data.excitation, data.mtu_length_m,
                        data.moment_arm_m, dt_s=data.dt_s, tendon=self.tendon, emd_s=self.emd_s,
                        excitation_before=data.excitation_before)

    def prior_residuals(self, p: torch.Tensor) -> torch.Tensor:
        """``(n_free,)`` residuals whose sum of squares is the prior term (zeros when off)."""
        if self.prior_weight == 0.0 or p.numel() == 0:
            return torch.zeros_like(p, device=self.device)
        scale = (self.prior_weight / p.numel()) ** 0.5
        p = p.to(self.device)
        centre = torch.as_tensor(self.spec.initial, dtype=p.dtype, device=self.device)
        span = torch.as_tensor(self.spec.upper - self.spec.lower, dtype=p.dtype,
                               device=self.device)
        return scale * (p - centre) / span

    def terms_from_output(self, out: ModelOutput, p: torch.Tensor | None = None) -> LossTerms:
        if self.tracking is not None:
            tracking = (self.tracking.residuals(out.moments_nm) ** 2).sum()
        else:
            err2 = (self.data.id_moment_nm - out.moments_nm) ** 2
            per_sample = (err2 * self.dof_weights[None, :, None]).mean(dim=1)
            tracking = (per_sample * self.time_weights).sum()
        fl = self.penalties["fiber_length"]
        ts = self.penalties["tendon_strain"]
        pen = (range_penalty(out.normalized_fiber_length, lower=fl.lower, upper=fl.upper,
                             weight=fl.weight)
               + range_penalty(out.tendon_strain, lower=ts.lower, upper=ts.upper,
                               weight=ts.weight)).sum(dim=1)
        penalty = (pen * self.time_weights).sum()
        if p is not None:
            penalty = penalty + (self.prior_residuals(p) ** 2).sum()
        return LossTerms(tracking + penalty, tracking, penalty)

    def terms(self, p: torch.Tensor) -> LossTerms:
        """Total, tracking and penalty (operating ranges plus the prior) at ``p``."""
        return self.terms_from_output(self.simulate(p), p)

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        return self.terms(p).total

    def residuals(self, p: torch.Tensor) -> torch.Tensor:
        """Weighted tracking residuals ``(n_res,)`` whose sum of squares is the tracking term."""
        return self._tracking_residuals(self.simulate(p))

    def _tracking_residuals(self, out: ModelOutput) -> torch.Tensor:
        if self.tracking is not None:
            return self.tracking.residuals(out.moments_nm)
        err = self.data.id_moment_nm - out.moments_nm
        valid = self.data.mask[:, None, :].expand_as(err)
        return (err * self._residual_scale)[valid]

    @property
    def n_tracking_residuals(self) -> int:
        """Number of tracking residuals (the first entries of :meth:`all_residuals`)."""
        if self.tracking is not None:
            return self.tracking.n_residuals
        return int(self.data.mask.sum()) * len(self.data.dof_names)

    def residual_series(self) -> np.ndarray:
        """``(n_res,)`` label of the (trial, DOF) time series of each :meth:`residuals` entry
        (consecutive entries with one label are consecutive samples)."""
        if self.tracking is not None:
            return self.tracking.series()
        n_trials, n_dofs, n_time = self.data.id_moment_nm.shape
        labels = torch.arange(n_trials * n_dofs).reshape(n_trials, n_dofs, 1)
        labels = labels.expand(n_trials, n_dofs, n_time)
        valid = self.data.mask[:, None, :].cpu().expand(n_trials, n_dofs, n_time)
        return labels[valid].numpy()

    def all_residuals(self, p: torch.Tensor) -> torch.Tensor:
        """Residuals ``(n_res,)`` whose sum of squares is the total loss: tracking, then one
        residual per (trial, MTU) for each operating-range penalty (the root of its time-weighted
        sum over samples, so the residual count stays small), then the prior."""
        out = self.simulate(p)
        parts = [self._tracking_residuals(out)]
        for key, x in (("fiber_length", out.normalized_fiber_length),
                       ("tendon_strain", out.tendon_strain)):
            parts.append(_root(self._penalty_sums(key, x)[0]).reshape(-1))
        parts.append(self.prior_residuals(p))
        return torch.cat(parts)

    def _penalty_sums(self, key: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum_t w tw dist^2, w tw signed distance)`` of one penalty: ``(trial, MTU)`` and
        ``(trial, MTU, time)`` (the signed distance is positive above the range)."""
        rng = self.penalties[key]
        signed = torch.relu(x - rng.upper) - torch.relu(rng.lower - x)
        weighted = signed * (rng.weight * self.time_weights[:, None, :])
        return (weighted * signed).sum(dim=2), weighted

    def residuals_and_jacobian(self, p: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """:meth:`all_residuals` at ``p`` and their exact Jacobian ``(n_res, n_free)``.

        Column-compressed forward mode (:mod:`pipeline.nms.tangents`): a muscle's parameters
        touch only that muscle's force, fibre length and tendon strain, so one tangent per
        parameter kind gives every column; shared entries (strength groups, global activation
        parameters) sum the columns of the MTUs that share them. A penalty residual that is zero
        (inside its range on every sample) gets a zero row (its square is smooth there).
        """
        from pipeline.nms.tangents import parameter_tangents

        data, spec = self.data, self.spec
        kinds = spec.free_kinds
        fields = [_FIELDS[k] for k in kinds]
        values, tangents = parameter_tangents(
            self.muscle_parameters(p.detach()), data.excitation, data.mtu_length_m,
            dt_s=data.dt_s, tendon=self.tendon, emd_s=self.emd_s, fields=fields,
            excitation_before=data.excitation_before)
        n_trials, n_mtus, _ = values.force_n.shape
        moments = (data.moment_arm_m * values.force_n.unsqueeze(2)).sum(dim=1)
        valid = data.mask[:, None, :].expand_as(moments)
        if self.tracking is not None:
            parts = [self.tracking.residuals(moments)]
        else:
            parts = [((data.id_moment_nm - moments) * self._residual_scale)[valid]]
        n_free = spec.n_free
        n_track = int(parts[0].numel())
        n_kinds = len(kinds)
        jac = torch.zeros(n_track + 2 * n_trials * n_mtus + n_free, n_free, dtype=torch.float64)
        # free column of each (kind, MTU) entry (-1: fixed), flattened like the tangents below
        columns = torch.stack([_mtu_columns(spec, k) for k in kinds]).reshape(-1)
        keep = columns >= 0
        kept = columns[keep]
        unique = int(kept.numel()) == int(torch.unique(kept).numel())
        # every entry free and in kind-major order: the tangents are the columns themselves
        identity = bool(keep.all()) and torch.equal(kept, torch.arange(n_free))

        def scatter(rows: slice, values: torch.Tensor) -> None:
            """Add ``values`` ``(n_rows, n_kinds * n_mtus)`` into the free columns."""
            values = values.cpu().double()
            if identity:
                jac[rows] = values
            elif unique:
                jac[rows, kept] = values[:, keep]
            else:
                jac[rows].index_add_(1, kept, values[:, keep])

        # d moment[t, d, n] / d theta_k[m] = arm[t, m, d, n] * d force[t, m, n] / d theta_k[m]
        force_tangents = torch.stack([tangents[f].force_n for f in fields], dim=1)  # t k m n
        force_tangents = force_tangents.permute(0, 3, 1, 2).unsqueeze(1)  # t 1 n k m
        if self.tracking is not None:
            arms = data.moment_arm_m.permute(0, 2, 3, 1).unsqueeze(3)  # t d n 1 m
            scatter(slice(0, n_track), self.tracking.jacobian(
                (arms * force_tangents).reshape(*arms.shape[:3], n_kinds * n_mtus)))
        else:
            arms = self._scaled_arms  # t d n 1 m
            if identity and bool(valid.all()) and jac.device == arms.device:
                torch.mul(arms, force_tangents, out=jac[:n_track].view(
                    *arms.shape[:3], n_kinds, n_mtus))
            else:
                scatter(slice(0, n_track), (arms * force_tangents)[valid]
                        .reshape(n_track, n_kinds * n_mtus))
        row = n_track
        for key, attr in (("fiber_length", "normalized_fiber_length"),
                          ("tendon_strain", "tendon_strain")):
            sums, weighted = self._penalty_sums(key, getattr(values, attr))
            root = _root(sums)
            parts.append(root.reshape(-1))
            inverse = torch.where(root > 0.0, 1.0 / torch.where(root > 0.0, root, 1.0), 0.0)
            # d r[t, m] / d theta_k[m] = sum_n w tw signed * d x / d theta_k[m] / r[t, m]
            x_tangents = torch.stack([getattr(tangents[f], attr) for f in fields], dim=1)
            slope = (weighted.unsqueeze(1) * x_tangents).sum(dim=3) * inverse.unsqueeze(1)
            # row (t, m) has MTU m's entries only: block-diagonal in m
            block = torch.zeros(n_trials, n_mtus, n_kinds, n_mtus, dtype=torch.float64,
                                device=slope.device)  # t, row MTU, k, column MTU
            block.diagonal(dim1=1, dim2=3).copy_(slope)
            scatter(slice(row, row + n_trials * n_mtus),
                    block.reshape(n_trials * n_mtus, n_kinds * n_mtus))
            row += n_trials * n_mtus
        parts.append(self.prior_residuals(p.detach()))
        if self.prior_weight > 0.0 and n_free:
            diag = (self.prior_weight / n_free) ** 0.5 / (spec.upper - spec.lower)
            jac[row:].diagonal().copy_(torch.as_tensor(diag))
        return torch.cat([x.reshape(-1) for x in parts]), jac.numpy()

    @cached_property
    def _residual_scale(self) -> torch.Tensor:
        """``(trial, dof, time)`` factor of the tracking residuals:
        ``sqrt(dof weight / n_dofs * time weight)`` (fixed with the data)."""
        return torch.sqrt(self.dof_weights[None, :, None] / len(self.data.dof_names)
                          * self.time_weights[:, None, :])

    @cached_property
    def _scaled_arms(self) -> torch.Tensor:
        """``-arm * residual scale`` laid out ``(trial, dof, time, 1, MTU)``: the fixed factor of
        the tracking residuals' Jacobian."""
        arms = self.data.moment_arm_m.permute(0, 2, 3, 1)  # t d n m
        return (-(arms * self._residual_scale.unsqueeze(-1))).unsqueeze(3).contiguous()

    def loss_numpy(self, p: np.ndarray) -> float:
        """Total loss at physical ``p`` without gradients (for annealing); ``inf`` where the model
        cannot be evaluated (e.g. a tendon slack length longer than the MTU)."""
        with torch.no_grad():
            try:
                return float(self(torch.as_tensor(p, dtype=torch.float64)))
            except MODEL_FAILURES:
                return float("inf")


def _mtu_columns(spec: ParameterSpec, kind: str) -> torch.Tensor:
    """``(muscle,)`` column in the free vector of each MTU's entry of ``kind`` (-1 if fixed)."""
    block = spec.blocks[kind]
    free = np.asarray(block.free_mask, dtype=bool)
    column = np.full(free.size, -1, dtype=np.int64)
    column[free] = np.arange(int(free.sum())) + spec.slices()[kind].start
    return torch.as_tensor(column[np.asarray(block.index)], dtype=torch.long)


def _root(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` for ``x >= 0`` with a zero (not an infinite) derivative at 0."""
    positive = x > 0.0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, 1.0)), 0.0)


#: Spec parameter kinds -> fields of :class:`~pipeline.nms.MuscleParameters`.
_FIELDS = {"c1": "c1", "c2": "c2", "shape_factor": "shape_factor",
           "optimal_fiber_length": "optimal_fiber_length_m",
           "tendon_slack_length": "tendon_slack_length_m", "strength": "strength",
           "damping": "damping"}


def variance_weights(data: TrialBatch) -> np.ndarray:
    """``1 / var`` of each DOF's ID moment over all valid samples (1 for a constant DOF)."""
    moments = data.id_moment_nm.cpu().numpy()
    mask = data.mask.cpu().numpy()
    weights = np.ones(moments.shape[1])
    for d in range(moments.shape[1]):
        values = moments[:, d][mask]
        var = float(np.var(values))
        weights[d] = 1.0 / var if var > 1e-12 else 1.0
    return weights
