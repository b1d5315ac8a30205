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
  force-velocity curve and the damping term;
* the activation dynamics run through the EMG recorded before the window
  (``excitation_before`` of the NMS inputs), as CEINMS runs them over the excitation rows that
  precede the first MTU sample, so the filter's state at the window's start is the recording's.

With the elastic tendon the fibre equilibrium (:mod:`pipeline.nms.tendon`) has no activation
dependent optimal fibre length, so there this objective needs ``ceinms_percentage_change: 0`` (set
CEINMS's ``percentageChange`` to 0 to compare) and runs the project's elastic model unchanged
(CEINMS's equilibrium-elastic tendon adds a penalty of 100 where its root search fails; none
here).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import torch

from pipeline.calibrate.least_squares import LeastSquaresResult
from pipeline.calibrate.losses import LossTerms, Objective
from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.spec import ParameterSpec
from pipeline.errors import ConfigError, describe
from pipeline.nms import DEFAULT_EMD_S, ModelOutput, MuscleParameters, curves
from pipeline.nms.activation import _delayed, delay_samples, muscle_activation_and_partials
from pipeline.nms.activation import activation as compute_activation
from pipeline.nms.mtu import cos_pennation, time_derivative
from pipeline.nms.tangents import (
    FIELDS,
    MuscleSignals,
    neural_tangents_arrays,
    parameter_tangents,
)
from pipeline.nms.tendon import stiff_fiber_state, tendon_strain

log = logging.getLogger(__name__)

#: CEINMS's ``percentageChange`` default (subject ``mtuDefault``).
DEFAULT_PERCENTAGE_CHANGE = 0.15
#: CEINMS's fibre-length penalty: weight and half-width of the free band around l/l0 = 1.
PENALTY_WEIGHT = 100.0
PENALTY_HALF_WIDTH = 0.5


def simulate_ceinms(params: MuscleParameters, batch: TrialBatch, *, emd_s: float,
                    percentage_change: float = DEFAULT_PERCENTAGE_CHANGE) -> ModelOutput:
    """The stiff-tendon model with CEINMS's shifted active curve and clipped fibre velocity."""
    act = ceinms_activation(params, batch, emd_s=emd_s)
    geometry = {"optimal_fiber_length_m": params.optimal_fiber_length_m,
                "tendon_slack_length_m": params.tendon_slack_length_m,
                "pennation_at_optimal_rad": params.pennation_at_optimal_rad}
    force, norm_length, length, velocity, norm_velocity = ceinms_fiber_force(
        act, batch.mtu_length_m, trial_time_derivative(batch.mtu_length_m, batch), **geometry,
        max_isometric_force_n=params.max_isometric_force_n, strength=params.strength,
        damping=params.damping, percentage_change=percentage_change)
    moments = torch.einsum("tmdn,tmn->tdn", batch.moment_arm_m, force)
    return ModelOutput(moments_nm=moments, activation=act, fiber_length_m=length,
                       fiber_velocity_mps=velocity, normalized_fiber_length=norm_length,
                       normalized_fiber_velocity=norm_velocity, force_n=force,
                       tendon_force_n=force,
                       tendon_strain=tendon_strain(batch.mtu_length_m, length, **geometry))


def ceinms_fiber_force(activation: torch.Tensor, mtu_length_m: torch.Tensor,
                       mtu_velocity_mps: torch.Tensor, *, optimal_fiber_length_m: torch.Tensor,
                       tendon_slack_length_m: torch.Tensor,
                       pennation_at_optimal_rad: torch.Tensor,
                       max_isometric_force_n: torch.Tensor, strength: torch.Tensor,
                       damping: torch.Tensor, percentage_change: float,
                       ) -> tuple[torch.Tensor, ...]:
    """The pointwise part of :func:`simulate_ceinms` (stiff tendon): signals ``(..., time)``,
    parameters ``(...,)`` (one per muscle, or one per sample with signals ``(n, 1)``).

    Returns:
        ``(force_n, normalized_fiber_length, fiber_length_m, fiber_velocity_mps,
        normalized_fiber_velocity)``.
    """
    length, velocity = stiff_fiber_state(mtu_length_m, mtu_velocity_mps,
                                         optimal_fiber_length_m=optimal_fiber_length_m,
                                         tendon_slack_length_m=tendon_slack_length_m,
                                         pennation_at_optimal_rad=pennation_at_optimal_rad)
    l0 = optimal_fiber_length_m.unsqueeze(-1)
    norm_length = length / l0
    norm_velocity = torch.clamp(
        velocity / (curves.MAX_CONTRACTION_VELOCITY_PER_S * l0), -1.0, 1.0)
    shifted_l0 = l0 * (1.0 + percentage_change * (1.0 - activation))
    normalised = (curves.active_force_length(length / shifted_l0)
                  * curves.force_velocity(norm_velocity) * activation
                  + curves.passive_force_length(norm_length)
                  + damping.unsqueeze(-1) * norm_velocity)
    cos_phi = cos_pennation(length, optimal_fiber_length_m=optimal_fiber_length_m,
                            pennation_at_optimal_rad=pennation_at_optimal_rad)
    force = (max_isometric_force_n * strength).unsqueeze(-1) * normalised * cos_phi
    return force, norm_length, length, velocity, norm_velocity


class CeinmsSignals(NamedTuple):
    """Per-muscle outputs of the CEINMS model (or their tangents), ``(trial, muscle, time)``:
    numpy arrays from :func:`ceinms_muscle_tangents` and the array loops."""

    force_n: np.ndarray
    normalized_fiber_length: np.ndarray


class StiffInputs(NamedTuple):
    """What :func:`ceinms_muscle_tangents` reads of a batch, as float64 numpy arrays: the
    delayed excitation through the recorded history ``(trial, muscle, n_before + time)``, the
    history's length, and the MTU lengths and their time derivatives ``(trial, muscle, time)``
    (:func:`trial_time_derivative`). Constant for a batch: an objective builds it once."""

    delayed: np.ndarray
    n_before: int
    mtu_length_m: np.ndarray
    mtu_velocity_mps: np.ndarray

    @classmethod
    def of(cls, batch: TrialBatch, *, emd_s: float) -> StiffInputs:
        history, n_before = _activation_history(batch)
        delayed = _delayed(history.detach(), delay_samples(emd_s=emd_s, dt_s=batch.dt_s))
        mtu_length = batch.mtu_length_m.detach()
        return cls(_numpy(delayed), n_before, _numpy(mtu_length),
                   _numpy(trial_time_derivative(mtu_length, batch)))


def ceinms_muscle_tangents(params: MuscleParameters, batch: TrialBatch, *, emd_s: float,
                           percentage_change: float, fields: Sequence[str],
                           inputs: StiffInputs | None = None,
                           ) -> tuple[CeinmsSignals, dict[str, CeinmsSignals]]:
    """:func:`simulate_ceinms`'s per-muscle force and normalised fibre length, and their exact
    derivatives w.r.t. each muscle's own parameter of each of ``fields`` (names of
    :class:`~pipeline.nms.MuscleParameters`), column-compressed as
    :func:`pipeline.nms.tangents.parameter_tangents`: ``tangents[f].force_n[t, m, n]`` is
    ``d force_n[t, m, n] / d params.<f>[m]``. numpy arrays, float64, whatever the batch's device
    (the Jacobian they feed is assembled in numpy); ``inputs``: the batch's
    :class:`StiffInputs`, when the caller keeps them.

    The neural activation's tangents come from the filter's tangent recursions (run, as
    :func:`ceinms_activation`, through the recorded history); the rest of the model is pointwise,
    and its partials are in closed form (:func:`_ceinms_force_and_partials`). No autodiff, and no
    tensor dispatch: on these small arrays numpy costs a fraction of torch's per-operation
    overhead.
    """
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise ValueError(f"no tangents for {unknown}; use any of {FIELDS}")
    if inputs is None:
        inputs = StiffInputs.of(batch, emd_s=emd_s)
    per_muscle = {k: _numpy(v) for k, v in params.as_dict().items()}
    neural, neural_tangent = neural_tangents_arrays(inputs.delayed, per_muscle["c1"],
                                                    per_muscle["c2"], fields=fields)
    n_before = inputs.n_before
    neural = neural[..., n_before:]
    force, norm_length, of_force, of_length = _ceinms_force_and_partials(
        neural, inputs.mtu_length_m, inputs.mtu_velocity_mps,
        {k: v[:, None] for k, v in per_muscle.items()}, percentage_change=percentage_change,
        wanted=bool(fields))
    values = CeinmsSignals(force, norm_length)
    zero = np.zeros(neural.shape)
    tangents = {}
    for f in fields:
        t_force = (of_force["neural"] * neural_tangent[f][..., n_before:]
                   if f in neural_tangent else zero)
        if f in of_force:
            t_force = t_force + of_force[f]
        tangents[f] = CeinmsSignals(t_force, of_length.get(f, zero))
    return values, tangents


def _ceinms_force_and_partials(neural: np.ndarray, mtu_length: np.ndarray,
                               mtu_velocity: np.ndarray, p: Mapping[str, np.ndarray], *,
                               percentage_change: float, wanted: bool,
                               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray],
                                          dict[str, np.ndarray]]:
    """:func:`ceinms_fiber_force` of the activation of ``neural`` (``(trial, muscle, time)``),
    its normalised fibre length, and (``wanted``) their elementwise partial derivatives w.r.t. the
    neural activation and each muscle's own ``shape_factor``, ``optimal_fiber_length_m``,
    ``tendon_slack_length_m``, ``strength`` and ``damping`` (a test holds them to autograd and to
    central differences). ``p``: :class:`~pipeline.nms.MuscleParameters`'s fields as
    ``(muscle, 1)`` arrays.

    With ``d = l_mt - l_ts``, ``w = l0 sin(phi0)``: ``l = sqrt(d^2 + w^2)``,
    ``cos(phi) = |d| / l``, ``v = (d / l) v_mt``, ``x = l / l0``, ``x_a = x / k`` with
    ``k = 1 + c (1 - a)`` (CEINMS's activation-dependent optimal length), ``v~`` = ``v /
    (vmax l0)`` clipped to [-1, 1] (no slope outside), ``N = fa(x_a) fv(v~) a + fp(x) + d_f v~``
    and ``F = Fmax s N cos(phi)``."""
    act, dact_dneural, dact_dshape = muscle_activation_and_partials(neural,
                                                                    p["shape_factor"][:, 0])
    along = mtu_length - p["tendon_slack_length_m"]
    sin_phi0 = np.sin(p["pennation_at_optimal_rad"])
    thickness = p["optimal_fiber_length_m"] * sin_phi0
    length = np.sqrt(along * along + thickness * thickness)
    inverse_length = 1.0 / length
    cos_phi = abs(along) * inverse_length
    velocity = along * inverse_length * mtu_velocity
    l0 = p["optimal_fiber_length_m"]
    norm_length = length / l0
    stretch = 1.0 + percentage_change * (1.0 - act)
    shifted_length = norm_length / stretch
    raw_velocity = velocity / (curves.MAX_CONTRACTION_VELOCITY_PER_S * l0)
    norm_velocity = np.clip(raw_velocity, -1.0, 1.0)
    fa, dfa = curves.active_force_length_and_slope(shifted_length)
    fv, dfv = curves.force_velocity_and_slope(norm_velocity)
    fp, dfp = curves.passive_force_length_and_slope(norm_length)
    damping = p["damping"]
    fa_fv = fa * fv
    normalised = fa_fv * act + fp + damping * norm_velocity
    max_force = p["max_isometric_force_n"] * p["strength"]
    force = max_force * normalised * cos_phi
    if not wanted:
        return force, norm_length, {}, {}
    scaled_cos = max_force * cos_phi
    # dN/da, dN/dx, dN/dx_a, dN/dv~ (zero slope where v~ is clipped)
    by_shifted = dfa * fv * act
    by_act = fa_fv + by_shifted * shifted_length * percentage_change / stretch
    by_velocity = (fa * dfv * act + damping) * ((raw_velocity >= -1.0) & (raw_velocity <= 1.0))
    # dN/dl, dN/dv (through x, x_a, v~) and dN/dl0 at fixed l and v
    per_l0 = 1.0 / l0
    by_length = (dfp + by_shifted / stretch) * per_l0
    by_fiber_velocity = by_velocity * (per_l0 / curves.MAX_CONTRACTION_VELOCITY_PER_S)
    by_l0_direct = -(dfp * norm_length + by_shifted * shifted_length
                     + by_velocity * raw_velocity) * per_l0
    # l, v and cos(phi) against d and w
    cube = inverse_length * inverse_length * inverse_length
    dlength_dd, dlength_dw = along * inverse_length, thickness * inverse_length
    dvelocity_dd = mtu_velocity * thickness * thickness * cube
    dvelocity_dw = -along * mtu_velocity * thickness * cube
    dcos_dd = np.sign(along) * thickness * thickness * cube
    dcos_dw = -abs(along) * thickness * cube
    by_d = max_force * ((by_length * dlength_dd + by_fiber_velocity * dvelocity_dd) * cos_phi
                        + normalised * dcos_dd)
    by_w = max_force * ((by_length * dlength_dw + by_fiber_velocity * dvelocity_dw) * cos_phi
                        + normalised * dcos_dw)
    by_act_force = scaled_cos * by_act
    of_force = {"neural": by_act_force * dact_dneural,
                "shape_factor": by_act_force * dact_dshape,
                "optimal_fiber_length_m": by_w * sin_phi0 + scaled_cos * by_l0_direct,
                "tendon_slack_length_m": -by_d,
                "strength": p["max_isometric_force_n"] * normalised * cos_phi,
                "damping": scaled_cos * norm_velocity}
    of_length = {"optimal_fiber_length_m": (dlength_dw * sin_phi0 - norm_length) * per_l0,
                 "tendon_slack_length_m": -dlength_dd * per_l0}
    return force, norm_length, of_force, of_length


def _activation_history(batch: TrialBatch) -> tuple[torch.Tensor, int]:
    """The excitation :func:`ceinms_activation` filters: the recorded history (NaN: hold the
    first window sample), then the window; and the history's length."""
    before = batch.excitation_before
    if before is None or before.shape[-1] == 0:
        return batch.excitation, 0
    first = batch.excitation[..., :1].expand_as(before)
    return torch.cat([torch.where(torch.isnan(before), first, before), batch.excitation],
                     dim=-1), before.shape[-1]


def ceinms_activation(params: MuscleParameters, batch: TrialBatch, *,
                      emd_s: float) -> torch.Tensor:
    """Activation ``(trial, muscle, time)`` run, as CEINMS does, through the excitation recorded
    before the window (``batch.excitation_before``; NaN, i.e. not recorded, holds the first
    window sample) and then through the window: the filter's state at the window's start comes
    from that history, not from a steady state."""
    history, n_before = _activation_history(batch)
    act = compute_activation(history, params.c1, params.c2, params.shape_factor,
                             dt_s=batch.dt_s, emd_s=emd_s)
    return act[..., n_before:] if n_before else act


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
        if tendon not in ("stiff", "elastic"):
            raise ConfigError(describe("config.yaml", f"calibration.tendon: unknown {tendon!r}",
                                       "use stiff or elastic"))
        if tendon == "elastic" and percentage_change != 0.0:
            raise ConfigError(describe(
                "config.yaml", "calibration.objective: ceinms with tendon: elastic needs "
                f"ceinms_percentage_change: 0, got {percentage_change}",
                "set calibration.tendon: stiff, or calibration.ceinms_percentage_change: 0 "
                "(and CEINMS's percentageChange 0) for the elastic tendon"))
        super().__init__(spec, data, tendon="stiff" if tendon == "stiff" else "elastic",
                         emd_s=emd_s, normalise_by_variance=False, prior_weight=prior_weight)
        self.percentage_change = float(percentage_change)
        self.band_tolerance = float(band_tolerance)
        #: ``(weight, margin)`` of the smooth penalty that stands in for CEINMS's during the
        #: continuation (:func:`solve_ceinms_least_squares`); None: CEINMS's own penalty.
        self.smooth_band: tuple[float, float] | None = None
        self._incremental: Any = None  # the array-loop evaluator, built on first use
        #: the solver's trial points from the array loops (False: through torch, as the
        #: differentiable path)
        self.array_loops = True
        mask = data.mask.to(torch.float64)
        self.n_samples = mask.sum(dim=1)  # (trial,)
        #: (trial, dof) weights 1 / var_id
        self.trial_dof_weights = torch.as_tensor(1.0 / trial_variances(data), dtype=torch.float64)

    @property
    def cheap_residuals(self) -> bool:
        """Residuals without derivatives cost a fraction of the Jacobian (stiff tendon: the array
        loops), so the least-squares solver evaluates the Jacobian at accepted points only."""
        return self.tendon == "stiff"

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
        value, _ = self._band_excess(out.normalized_fiber_length - 1.0)
        penalty = ((value * self._penalty_root_weights()) ** 2
                   * self.data.mask[:, None, :]).sum()
        if p is not None:
            penalty = penalty + (self.prior_residuals(p) ** 2).sum()
        return LossTerms(tracking + penalty, tracking, penalty)

    def _tracking_residuals(self, out: ModelOutput) -> torch.Tensor:
        err = self.data.id_moment_nm - out.moments_nm
        layout = self._layout()
        scale = torch.from_numpy(layout.scale).to(err.device)
        return (err * scale)[torch.from_numpy(layout.valid_track).to(err.device)]

    def all_residuals(self, p: torch.Tensor) -> torch.Tensor:
        """Residuals whose sum of squares is the total loss: tracking, fibre-length penalty (one
        per trial and MTU, the root of ``sum_t 100 n_dofs / N_i (x - 1)^2`` over the samples
        outside the band), prior."""
        if self.tendon == "stiff" and not (torch.is_grad_enabled() and p.requires_grad):
            # No derivative wanted (the least-squares solver's trial points): the same values
            # as below, without autograd's bookkeeping; from the numpy array loops on the CPU.
            values = self._compiled_signals(p.detach())
            if values is None:
                values, _ = ceinms_muscle_tangents(
                    self.muscle_parameters(p.detach()), self.data, emd_s=self.emd_s,
                    percentage_change=self.percentage_change, fields=(),
                    inputs=self._layout().stiff)
            return torch.from_numpy(self._residuals_from(values, p.detach())[0])
        out = self.simulate(p)
        return torch.cat([self._tracking_residuals(out), self._penalty_rows(out),
                          self.prior_residuals(p)])

    def _compiled_signals(self, p: torch.Tensor) -> CeinmsSignals | None:
        """Force and normalised fibre length at ``p`` from the array loops
        (:class:`~pipeline.calibrate.incremental.IncrementalLoss`, vectorised numpy: the same
        model to rounding, without tensor dispatch or numba's start-up; about 0.5 ms on the
        walking problems against 2 ms through torch); None off the CPU or with
        ``array_loops`` False."""
        if self._incremental is None:
            if not self.array_loops or self.device.type != "cpu":
                return None
            from pipeline.calibrate.incremental import IncrementalLoss

            self._incremental = IncrementalLoss(self, backend="numpy")
        state = self._incremental.signals(p.numpy())
        return CeinmsSignals(state["force_n"].numpy(), state["normalized_fiber_length"].numpy())

    def residuals_and_jacobian(self, p: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """:meth:`all_residuals` at ``p`` and their exact Jacobian ``(n_res, n_free)`` (dense).

        Column-compressed tangents, one per free parameter kind (:func:`ceinms_muscle_tangents`
        for the stiff tendon, :func:`pipeline.nms.tangents.parameter_tangents` for the elastic
        one): a muscle's parameters move only that muscle's force and fibre length, so a unit
        tangent on every MTU's value of a kind gives each MTU's column at once; entries shared by
        several MTUs (strength groups, global activation parameters) sum their MTUs' columns
        (:class:`_JacobianLayout`).
        """
        data = self.data
        p = p.detach()
        params = self.muscle_parameters(p)
        layout = self._layout()
        values: CeinmsSignals | MuscleSignals
        tangents: Mapping[str, CeinmsSignals | MuscleSignals]
        if self.tendon == "stiff":
            values, tangents = ceinms_muscle_tangents(
                params, data, emd_s=self.emd_s, percentage_change=self.percentage_change,
                fields=layout.fields, inputs=layout.stiff)
        else:  # the project's elastic model, as :meth:`simulate` runs it
            values, tangents = parameter_tangents(
                params, data.excitation, data.mtu_length_m, dt_s=data.dt_s, tendon="elastic",
                emd_s=self.emd_s, fields=layout.fields, excitation_before=data.excitation_before)
        residuals, weighted, sign, root_w, pen = self._residuals_from(values, p)
        # d pen / d x = sum_t w_t e_t sign_t dx_t / pen (0 where no fibre is penalised)
        pen_slope = weighted * sign * root_w / np.where(pen > 0, pen, 1.0)[..., None]
        n_trials, n_mtus, n_time = weighted.shape
        n_kinds = len(layout.fields)
        d_force = np.stack([_numpy(tangents[f].force_n) for f in layout.fields])
        # (trial, time, kind, mtu) per valid tracking row: d moment = arm * d force
        by_sample = d_force.transpose(1, 3, 0, 2).reshape(n_trials * n_time, n_kinds, n_mtus)
        compressed = (layout.track_arm[:, None, :] * by_sample[layout.track_sample])
        d_length = np.stack([_numpy(tangents[f].normalized_fiber_length)
                             for f in layout.fields])
        d_pen = (pen_slope[None] * d_length).sum(axis=3)  # (kind, trial, mtu)
        pen_compressed = np.zeros((n_trials, n_mtus, n_kinds, n_mtus))
        own = np.arange(n_mtus)
        pen_compressed[:, own, :, own] = d_pen.transpose(2, 1, 0)
        jacobian = np.empty((residuals.size, self.spec.n_free))
        n_track = layout.track_arm.shape[0]
        n_pen = n_trials * n_mtus
        jacobian[:n_track] = compressed.reshape(n_track, -1) @ layout.columns
        jacobian[n_track:n_track + n_pen] = pen_compressed.reshape(n_pen, -1) @ layout.columns
        jacobian[n_track + n_pen:] = 0.0
        if self.prior_weight > 0.0 and self.spec.n_free:
            jacobian[n_track + n_pen:] = np.diag((self.prior_weight / self.spec.n_free) ** 0.5
                                                 / (self.spec.upper - self.spec.lower))
        return torch.from_numpy(residuals), jacobian

    def _residuals_from(self, values: CeinmsSignals | MuscleSignals, p: torch.Tensor,
                        ) -> tuple[np.ndarray, ...]:
        """:meth:`all_residuals` from the model's per-muscle force and fibre length (numpy),
        and the penalty's per-sample weighted excess, sign, root weights and per-(trial, MTU)
        residuals, which its Jacobian reuses."""
        layout = self._layout()
        moments = np.einsum("tmdn,tmn->tdn", layout.moment_arm, _numpy(values.force_n))
        excess, sign = self._band_excess(_numpy(values.normalized_fiber_length) - 1.0)
        root_w = self._penalty_root()
        weighted = excess * root_w  # (trial, mtu, time); 0 on padding
        pen = np.sqrt(np.maximum((weighted**2).sum(axis=2), 1e-300))  # _root_sum_squares
        tracking = ((layout.id_moment - moments) * layout.scale)[layout.valid_track]
        prior = (_numpy(self.prior_residuals(p)) if self.prior_weight > 0.0
                 else np.zeros(self.spec.n_free))
        residuals = np.concatenate([tracking, pen.reshape(-1), prior])
        return residuals, weighted, sign, root_w, pen

    def _layout(self) -> _JacobianLayout:
        """The constant part of :meth:`residuals_and_jacobian`, built once per data set."""
        cached = getattr(self, "_cached_layout", None)
        if cached is None or cached[0] is not self.data:
            cached = (self.data, _JacobianLayout.build(self))
            self._cached_layout = cached
        return cached[1]

    def _penalty_rows(self, out: ModelOutput) -> torch.Tensor:
        value, _ = self._band_excess(out.normalized_fiber_length - 1.0)
        return _root_sum_squares(value * self._penalty_root_weights()).reshape(-1)

    def _band_excess(self, deviation: Any) -> tuple[Any, Any]:
        """Per-sample penalty residual (before its weight) and its slope in ``l/l0``, for a torch
        tensor or a numpy array.

        CEINMS's penalty (``smooth_band`` None): ``|x - 1|`` outside the band, 0 inside (it
        jumps at the edge). The smooth stand-in of the continuation: ``|x - 1| - (0.5 - margin)``
        outside a band narrowed by ``margin``, 0 inside (continuous at the edge)."""
        if self.smooth_band is None:
            threshold, shift = PENALTY_HALF_WIDTH + self.band_tolerance, 0.0
        else:
            threshold = PENALTY_HALF_WIDTH - self.smooth_band[1]
            shift = threshold
        xp: Any = torch if isinstance(deviation, torch.Tensor) else np
        magnitude = abs(deviation)
        outside = magnitude > threshold
        value = xp.where(outside, magnitude - shift, xp.zeros_like(deviation))
        return value, xp.sign(deviation) * outside

    def _penalty_root_weights(self) -> torch.Tensor:
        """:meth:`_penalty_root` as a tensor on the data's device."""
        return torch.from_numpy(self._penalty_root()).to(self.data.mask.device)

    def _penalty_root(self) -> np.ndarray:
        """``(trial, 1, time)``: ``sqrt(weight n_dofs / N_i)`` on valid samples (the weight of
        CEINMS's penalty, or of the continuation's smooth one)."""
        weight = PENALTY_WEIGHT if self.smooth_band is None else self.smooth_band[0]
        return math.sqrt(weight) * self._layout().penalty_root


class _JacobianLayout(NamedTuple):
    """What :meth:`CeinmsObjective.residuals_and_jacobian` reads at every call but never
    changes: the data as numpy, the tracking rows' weights, and the map from compressed columns
    (one per kind and MTU) to free parameters."""

    fields: tuple[str, ...]
    moment_arm: np.ndarray  # (trial, mtu, dof, time)
    id_moment: np.ndarray  # (trial, dof, time)
    scale: np.ndarray  # (trial, dof, time): sqrt(1 / (var_id N_i)) on valid samples
    valid_track: np.ndarray  # (trial, dof, time) bool
    track_arm: np.ndarray  # (n_track, mtu): -moment arm x scale of each tracking row
    track_sample: np.ndarray  # (n_track,): trial * n_time + time of each tracking row
    penalty_root: np.ndarray  # (trial, 1, time): sqrt(n_dofs / N_i) on valid samples
    columns: np.ndarray  # (kind * mtu, n_free): 1 where an MTU's kind feeds a free parameter
    stiff: StiffInputs | None  # the stiff tendon's inputs of ceinms_muscle_tangents

    @classmethod
    def build(cls, objective: CeinmsObjective) -> _JacobianLayout:
        data, spec = objective.data, objective.spec
        n_trials, n_mtus, n_time = data.excitation.shape
        n_dofs = len(data.dof_names)
        kinds = spec.free_kinds
        scale = _numpy(torch.sqrt(objective.trial_dof_weights[:, :, None]
                                  * objective._sample_weights()[:, None, :]))
        valid = _numpy(data.mask[:, None, :].expand(n_trials, n_dofs, n_time)).copy()
        arm = _numpy(data.moment_arm_m)
        # (trial, dof, time, mtu) -> valid rows
        track_arm = -(arm.transpose(0, 2, 3, 1) * scale[..., None])[valid]
        sample = (np.arange(n_trials)[:, None, None] * n_time
                  + np.arange(n_time)[None, None, :])
        track_sample = np.broadcast_to(sample, valid.shape)[valid]
        columns = np.zeros((len(kinds) * n_mtus, spec.n_free))
        slices = spec.slices()
        for k, kind in enumerate(kinds):
            block, part = spec.blocks[kind], slices[kind]
            column = np.full(len(block.entry_names), -1)
            column[block.free_mask] = np.arange(part.start, part.stop)
            for m, entry in enumerate(block.index):
                if column[entry] >= 0:
                    columns[k * n_mtus + m, column[entry]] = 1.0
        penalty_root = _numpy(torch.sqrt(n_dofs * objective._sample_weights()))[:, None, :]
        stiff = (StiffInputs.of(data, emd_s=objective.emd_s) if objective.tendon == "stiff"
                 else None)
        return cls(tuple(_FIELDS[kind] for kind in kinds), arm,
                   _numpy(data.id_moment_nm), scale, valid, track_arm, track_sample,
                   penalty_root, columns, stiff)


def _numpy(tensor: torch.Tensor | np.ndarray) -> np.ndarray:
    """A numpy array on the CPU, float64 where the tensor is floating point (an array as it
    is)."""
    if isinstance(tensor, np.ndarray):
        return tensor
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and tensor.dtype != torch.float64:
        tensor = tensor.double()
    return tensor.numpy()


def _root_sum_squares(weighted: torch.Tensor) -> torch.Tensor:
    """``(trial, mtu)`` root of the sum over time of squared weighted penalties: one residual
    per trial and MTU (its square is that MTU's penalty in the loss). The floor keeps autograd
    finite where a fibre is never penalised (the residual is then 1e-150, its square 1e-300)."""
    return torch.sqrt((weighted**2).sum(dim=2).clamp_min(1e-300))


#: The continuation's smooth penalties, ``(weight, margin)``, solved in turn from the start:
#: each stage's solution starts the next. A stiff first stage keeps every fibre inside the band
#: from the start; the softer second one lets the solution move along the band's edge; the last
#: one closes it again. Measured in-process against CEINMS 0.9's annealing (``bench ceinms``,
#: common loss): 0.00869 on the 1-DOF walk (CEINMS 0.00876) in 112 evaluations and 1.1652 on
#: the 3-DOF walk (CEINMS 1.1764) in 218; rising weights (1e2, 1e4, 1e6) reached 0.01158 (another
#: basin) and 1.1661 at the same cost, a single stage of 1e6 0.00877 and 1.2512. A margin of
#: 0.001 narrows the band (0.01 reached 1.1776 on the 3-DOF walk: CEINMS parks fibres on the
#: edge).
CONTINUATION = ((1e6, 0.001), (1e4, 0.001), (1e6, 0.001))
#: Relative tolerance and evaluation cap of each smooth stage (the polish uses the configured
#: tolerance and ``max_evaluations``).
STAGE_TOLERANCE = 1e-6
STAGE_MAX_EVALUATIONS = 60


def solve_ceinms_least_squares(objective: CeinmsObjective, p0: np.ndarray, /, *,
                               max_evaluations: int, tolerance: float,
                               stages: Sequence[tuple[float, float]] = CONTINUATION,
                               history: list[dict[str, float]] | None = None,
                               iteration_offset: int = 0, elapsed_offset_s: float = 0.0,
                               ) -> LeastSquaresResult:
    """Least squares on CEINMS's objective through a continuation on its fibre-length penalty.

    CEINMS's penalty jumps from 0 to 25 at the band's edge (|l/l0 - 1| = 0.5). A Gauss-Newton
    step cannot see a jump: a fibre that reaches the edge stops the solver there (on the 3-DOF
    walk, at loss 13.7 against 1.18 for CEINMS's annealing). Inside the band the penalty is 0,
    so CEINMS's optimum is the best tracking with every fibre inside the band: a constrained
    problem. The continuation solves it with smooth exterior penalties (:data:`CONTINUATION`) on a
    band narrowed by a margin (``stages``; :data:`STAGE_TOLERANCE`, at most
    :data:`STAGE_MAX_EVALUATIONS` each), then polishes on CEINMS's own objective (``tolerance``,
    ``max_evaluations``). The result is never worse than the start under CEINMS's objective.
    """
    from pipeline.calibrate.least_squares import solve_least_squares

    rows = [] if history is None else history
    evaluations = jacobians = 0
    elapsed = 0.0
    p = np.asarray(p0, dtype=float)
    try:
        for weight, margin in stages:
            objective.smooth_band = (float(weight), float(margin))
            stage = solve_least_squares(objective, p,
                                        max_evaluations=min(max_evaluations,
                                                            STAGE_MAX_EVALUATIONS),
                                        tolerance=max(tolerance, STAGE_TOLERANCE), history=rows,
                                        iteration_offset=iteration_offset + evaluations,
                                        elapsed_offset_s=elapsed_offset_s + elapsed)
            evaluations, jacobians = evaluations + stage.evaluations, jacobians + stage.jacobians
            elapsed += stage.wall_s
            p = stage.p
            log.debug("continuation stage (weight %g, margin %g): loss %.6g, %d evaluations",
                      weight, margin, stage.loss, stage.evaluations)
    finally:
        objective.smooth_band = None
    final = solve_least_squares(objective, p, max_evaluations=max_evaluations,
                                tolerance=tolerance, history=rows,
                                iteration_offset=iteration_offset + evaluations,
                                elapsed_offset_s=elapsed_offset_s + elapsed)
    best = final
    with torch.no_grad():
        start_loss = float(objective.terms(torch.as_tensor(p0, dtype=torch.float64)).total)
    if start_loss < final.loss:
        best = replace(final, p=np.asarray(p0, dtype=float), loss=start_loss,
                       tracking_jacobian=None)
    log.info("CEINMS objective: penalty continuation (%d stages) and polish: loss %.6g -> %.6g, "
             "%d evaluations, %.2f s", len(stages), start_loss, best.loss,
             evaluations + final.evaluations, elapsed + final.wall_s)
    return replace(best, evaluations=evaluations + final.evaluations,
                   jacobians=jacobians + final.jacobians, wall_s=elapsed + final.wall_s,
                   history=rows)


#: Parameter kind -> field of :class:`~pipeline.nms.MuscleParameters`.
_FIELDS = {"c1": "c1", "c2": "c2", "shape_factor": "shape_factor",
           "optimal_fiber_length": "optimal_fiber_length_m",
           "tendon_slack_length": "tendon_slack_length_m", "strength": "strength",
           "damping": "damping"}


def percentage_change_from_config(calibration: Mapping[str, Any]) -> float:
    value = float(calibration.get("ceinms_percentage_change", DEFAULT_PERCENTAGE_CHANGE))
    if not 0.0 <= value < 1.0:
        raise ConfigError(describe("config.yaml", f"calibration.ceinms_percentage_change "
                                   f"{value} is outside [0, 1)",
                                   "use CEINMS's percentageChange, usually 0.15"))
    return value
