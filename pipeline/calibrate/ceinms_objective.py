"""CEINMS 0.9's calibration objective (``calibration.objective: ceinms``), on the project's model.

CEINMS's ``minimizeTorqueError`` (the only objective of CEINMScalibrate 0.9), for trials ``i``
with ``N_i`` samples and the tracked DOFs ``d``:

    F = sum_i sum_d [ SSE_id / var_id + P_i ] / N_i

* ``SSE_id = sum_t (M_ID - M)^2``; ``var_id`` is the sample variance (``N_i - 1`` denominator) of
  the ID moment of DOF ``d`` *in trial i alone* (the default objective pools all trials);
* DOFs are summed, not averaged, and ``P_i`` is added once per tracked DOF;
* ``P_i = sum_t sum_m p(l_m / l0_m)`` with ``p(x) = 100 (x - 1)^2`` where ``|x - 1| > 0.5`` and 0
  elsewhere: the *whole* deviation from 1 is squared once outside the band, so the penalty jumps
  from 0 to 25 at 0.5 and 1.5 (the default objective squares only the distance outside the band,
  and adds a tendon-strain penalty). The elastic tendon of CEINMS adds no such smooth term.

The model differs from the default in two CEINMS details, applied with a stiff tendon:

* activation-dependent optimal fibre length (Huijing 1995): the active force-length curve is read
  at ``l / (l0 (1 + gamma (1 - a)))`` with ``gamma = percentageChange`` (CEINMS default 0.15);
  the passive curve, the pennation and the penalty use ``l0``;
* the normalised fibre velocity is clipped to [-1, 1] (``|v / l0| <= vmax``) before the
  force-velocity curve and the damping term.

With the elastic tendon the fibre equilibrium (:mod:`pipeline.nms.tendon`) has no activation
dependent optimal fibre length, so there this objective needs ``ceinms_percentage_change: 0`` (set
CEINMS's ``percentageChange`` to 0 to compare) and runs the project's elastic model unchanged
(CEINMS's equilibrium-elastic tendon adds a penalty of 100 where its root search fails; none
here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pipeline.calibrate.losses import LossTerms, Objective
from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.spec import ParameterSpec
from pipeline.errors import ConfigError, describe
from pipeline.nms import DEFAULT_EMD_S, ModelOutput, MuscleParameters, curves
from pipeline.nms.activation import activation as compute_activation
from pipeline.nms.mtu import cos_pennation, time_derivative
from pipeline.nms.tendon import stiff_fiber_kinematics, tendon_strain

#: CEINMS's ``percentageChange`` default (subject ``mtuDefault``).
DEFAULT_PERCENTAGE_CHANGE = 0.15
#: CEINMS's fibre-length penalty: weight and half-width of the free band around l/l0 = 1.
PENALTY_WEIGHT = 100.0
PENALTY_HALF_WIDTH = 0.5


def simulate_ceinms(params: MuscleParameters, batch: TrialBatch, *, emd_s: float,
                    percentage_change: float = DEFAULT_PERCENTAGE_CHANGE) -> ModelOutput:
    """The stiff-tendon model with CEINMS's shifted active curve and clipped fibre velocity."""
    act = compute_activation(batch.excitation, params.c1, params.c2, params.shape_factor,
                             dt_s=batch.dt_s, emd_s=emd_s)
    l0 = params.optimal_fiber_length_m.unsqueeze(-1)
    geometry = {"optimal_fiber_length_m": params.optimal_fiber_length_m,
                "tendon_slack_length_m": params.tendon_slack_length_m,
                "pennation_at_optimal_rad": params.pennation_at_optimal_rad}
    length, _ = stiff_fiber_kinematics(batch.mtu_length_m, **geometry, dt_s=batch.dt_s)
    along_tendon = batch.mtu_length_m - params.tendon_slack_length_m.unsqueeze(-1)
    velocity = along_tendon / length * trial_time_derivative(batch.mtu_length_m, batch)
    norm_length = length / l0
    norm_velocity = torch.clamp(
        velocity / (curves.MAX_CONTRACTION_VELOCITY_PER_S * l0), -1.0, 1.0)
    shifted_l0 = l0 * (1.0 + percentage_change * (1.0 - act))
    normalised = (curves.active_force_length(length / shifted_l0)
                  * curves.force_velocity(norm_velocity) * act
                  + curves.passive_force_length(norm_length)
                  + params.damping.unsqueeze(-1) * norm_velocity)
    cos_phi = cos_pennation(length, optimal_fiber_length_m=params.optimal_fiber_length_m,
                            pennation_at_optimal_rad=params.pennation_at_optimal_rad)
    force = (params.max_isometric_force_n * params.strength).unsqueeze(-1) * normalised * cos_phi
    moments = torch.einsum("tmdn,tmn->tdn", batch.moment_arm_m, force)
    return ModelOutput(moments_nm=moments, activation=act, fiber_length_m=length,
                       fiber_velocity_mps=velocity, normalized_fiber_length=norm_length,
                       normalized_fiber_velocity=norm_velocity, force_n=force,
                       tendon_force_n=force,
                       tendon_strain=tendon_strain(batch.mtu_length_m, length, **geometry))


def trial_time_derivative(signal: torch.Tensor, batch: TrialBatch) -> torch.Tensor:
    """``d signal / dt`` ``(trial, ..., time)`` of each trial on its own valid samples, as CEINMS
    sees each trial alone: the padded trials' last valid sample gets the one-sided stencil
    instead of a central difference reaching into the padding."""
    deriv = time_derivative(signal, dt_s=batch.dt_s)
    n_time = signal.shape[-1]
    fixes = []
    for k, n in enumerate(batch.lengths()):
        if 3 <= n < n_time:
            last = (3.0 * signal[k, ..., n - 1] - 4.0 * signal[k, ..., n - 2]
                    + signal[k, ..., n - 3]) / (2.0 * batch.dt_s)
            fixes.append((k, n - 1, last))
    if not fixes:
        return deriv
    deriv = deriv.clone()
    for k, i, value in fixes:
        deriv[k, ..., i] = value
    return deriv


def trial_variances(batch: TrialBatch) -> np.ndarray:
    """``(trial, dof)`` sample variance (``n - 1``) of each trial's ID moments (valid samples);
    1 where a DOF's moment is constant in a trial."""
    moments = batch.id_moment_nm.numpy()
    mask = batch.mask.numpy()
    out = np.ones(moments.shape[:2])
    for k in range(moments.shape[0]):
        values = moments[k][:, mask[k]]
        var = np.var(values, axis=1, ddof=1)
        out[k] = np.where(var > 1e-12, var, 1.0)
    return out


def fibre_length_penalty(norm_fiber_length: torch.Tensor, *, band_tolerance: float = 0.0,
                         ) -> torch.Tensor:
    """CEINMS's per-sample penalty ``100 (x - 1)^2`` where ``|x - 1| > 0.5 + band_tolerance``,
    else 0 (``band_tolerance`` 0: exactly CEINMS)."""
    deviation = norm_fiber_length - 1.0
    outside = deviation.abs() > PENALTY_HALF_WIDTH + band_tolerance
    return torch.where(outside, PENALTY_WEIGHT * deviation**2, torch.zeros_like(deviation))


class CeinmsObjective(Objective):
    """:class:`~pipeline.calibrate.losses.Objective` with CEINMS's loss (module docstring).

    The prior (``prior_weight``) is kept as in the default objective (0 = as CEINMS).
    ``band_tolerance`` widens the penalty's free band (0 = CEINMS): the penalty jumps by 25 at
    the band's edge, where annealing tends to park fibres, so a solution read back from a
    decimal file may need a tolerance of a few ulps to be judged as its optimiser saw it.
    """

    def __init__(self, spec: ParameterSpec, data: TrialBatch, *, tendon: str = "stiff",
                 emd_s: float = DEFAULT_EMD_S,
                 percentage_change: float = DEFAULT_PERCENTAGE_CHANGE,
                 prior_weight: float = 0.0, band_tolerance: float = 0.0) -> None:
        if tendon == "elastic" and percentage_change != 0.0:
            raise ConfigError(describe(
                "config.yaml", "calibration.objective: ceinms with tendon: elastic needs "
                f"ceinms_percentage_change: 0, got {percentage_change}",
                "set calibration.tendon: stiff, or calibration.ceinms_percentage_change: 0 "
                "(and CEINMS's percentageChange 0) for the elastic tendon"))
        super().__init__(spec, data, tendon=tendon, emd_s=emd_s, normalise_by_variance=False,
                         prior_weight=prior_weight)
        self.percentage_change = float(percentage_change)
        self.band_tolerance = float(band_tolerance)
        mask = data.mask.to(torch.float64)
        self.n_samples = mask.sum(dim=1)  # (trial,)
        #: (trial, dof) weights 1 / var_id
        self.trial_dof_weights = torch.as_tensor(1.0 / trial_variances(data), dtype=torch.float64)

    def simulate(self, p: torch.Tensor, data: TrialBatch | None = None) -> ModelOutput:
        if self.tendon != "stiff":
            return super().simulate(p, data)
        return simulate_ceinms(self.muscle_parameters(p), data or self.data, emd_s=self.emd_s,
                               percentage_change=self.percentage_change)

    def _sample_weights(self) -> torch.Tensor:
        """``(trial, time)``: 1 / N_i on valid samples, 0 on padding."""
        return self.data.mask.to(torch.float64) / self.n_samples[:, None]

    def terms_from_output(self, out: ModelOutput, p: torch.Tensor | None = None) -> LossTerms:
        err2 = (self.data.id_moment_nm - out.moments_nm) ** 2
        weights = self._sample_weights()
        tracking = (err2 * self.trial_dof_weights[:, :, None] * weights[:, None, :]).sum()
        pen = fibre_length_penalty(out.normalized_fiber_length,
                                   band_tolerance=self.band_tolerance).sum(dim=1)
        penalty = len(self.data.dof_names) * (pen * weights).sum()
        if p is not None:
            penalty = penalty + (self.prior_residuals(p) ** 2).sum()
        return LossTerms(tracking + penalty, tracking, penalty)

    def _tracking_residuals(self, out: ModelOutput) -> torch.Tensor:
        err = self.data.id_moment_nm - out.moments_nm
        scale = torch.sqrt(self.trial_dof_weights[:, :, None]
                           * self._sample_weights()[:, None, :])
        valid = self.data.mask[:, None, :].expand_as(err)
        return (err * scale)[valid]

    def all_residuals(self, p: torch.Tensor) -> torch.Tensor:
        """Residuals whose sum of squares is the total loss: tracking, fibre-length penalty
        (``sqrt(100 n_dofs / N_i) |x - 1|`` outside the band), prior."""
        out = self.simulate(p)
        deviation = out.normalized_fiber_length - 1.0
        outside = deviation.abs() > PENALTY_HALF_WIDTH + self.band_tolerance
        root_w = torch.sqrt(len(self.data.dof_names) * PENALTY_WEIGHT
                            * self._sample_weights())[:, None, :]
        pen = torch.where(outside, deviation.abs(), torch.zeros_like(deviation)) * root_w
        valid = self.data.mask[:, None, :].expand_as(pen)
        return torch.cat([self._tracking_residuals(out), pen[valid], self.prior_residuals(p)])


def percentage_change_from_config(calibration: Mapping[str, Any]) -> float:
    value = float(calibration.get("ceinms_percentage_change", DEFAULT_PERCENTAGE_CHANGE))
    if not 0.0 <= value < 1.0:
        raise ConfigError(describe("config.yaml", f"calibration.ceinms_percentage_change "
                                   f"{value} is outside [0, 1)",
                                   "use CEINMS's percentageChange, usually 0.15"))
    return value
