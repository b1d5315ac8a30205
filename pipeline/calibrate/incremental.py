"""The objective for coordinate-wise optimisers: re-simulate only the muscles a move touches.

Simulated annealing (like CEINMS's) changes one parameter per evaluation; a muscle's parameters
touch only that muscle's activation, fibre state and force. :class:`IncrementalLoss` keeps every
muscle's outputs at the last evaluated point, simulates only the MTUs whose parameters differ
from it (one MTU for a per-muscle parameter, a group for a shared strength or a global activation
parameter), splices them in, and sums the moments and the loss. The loss is the objective's
(:meth:`~pipeline.calibrate.losses.Objective.terms_from_output`), to rounding: the same model runs
on a subset of independent muscles. On the CPU it runs as the array loops of
:mod:`pipeline.nms.compiled` (numba's compiled loops, or vectorised numpy with
``backend="numpy"``), free of small-tensor dispatch costs, and keeps each muscle's moment
contributions and penalty sums, so a move re-sums only the muscles it re-simulated.

CEINMS's objective (:class:`~pipeline.calibrate.ceinms_objective.CeinmsObjective`, stiff tendon)
runs the same way where numba is installed: the compiled loops with CEINMS's model details (the
activation filter run through the recorded history, the activation-dependent optimal fibre length,
the clipped fibre velocity) and CEINMS's loss from the objective's own residuals
(:func:`supports` says which objectives have an incremental loss).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipeline.calibrate.ceinms_objective import CeinmsObjective, CeinmsSignals, StiffInputs
from pipeline.calibrate.losses import _FIELDS, MODEL_FAILURES, Objective
from pipeline.nms import ModelOutput, compiled, simulate
from pipeline.nms.activation import _delayed, delay_samples
from pipeline.nms.mtu import time_derivative


def supports(objective: Objective, *, backend: str = "numba") -> bool:
    """Whether :class:`IncrementalLoss` computes ``objective``'s loss: the default objective
    always; CEINMS's with the stiff tendon on the CPU where the array loops run (``backend``
    ``"numba"`` where numba is installed, ``"numpy"`` anywhere)."""
    if type(objective) is Objective:
        return True
    return (type(objective) is CeinmsObjective and objective.tendon == "stiff"
            and (backend == "numpy" or compiled.AVAILABLE) and objective.device.type == "cpu")

_PER_MUSCLE = ("activation", "fiber_length_m", "fiber_velocity_mps", "normalized_fiber_length",
               "normalized_fiber_velocity", "force_n", "tendon_force_n", "tendon_strain")


class IncrementalLoss:
    """``loss(p)`` of ``objective`` at physical ``p`` (numpy), ``inf`` where the model fails."""

    def __init__(self, objective: Objective, *, backend: str = "numba") -> None:
        self.objective = objective
        spec = objective.spec
        n_mtus = len(spec.mtu_names)
        #: (n_free, n_mtus) True where free parameter k acts on MTU m
        touches = np.zeros((spec.n_free, n_mtus), dtype=bool)
        for kind, sl in spec.slices().items():
            block = spec.blocks[kind]
            for column, entry in zip(range(sl.start, sl.stop),
                                     np.flatnonzero(block.free_mask), strict=True):
                touches[column, np.asarray(block.index) == entry] = True
        self._touches = touches
        if not supports(objective, backend=backend):
            raise ValueError(f"no incremental loss for {type(objective).__name__} "
                             f"(tendon {objective.tendon}, device {objective.device})")
        #: the array loops of :mod:`pipeline.nms.compiled` (else the torch model)
        self._compiled = ((backend == "numpy" or compiled.AVAILABLE)
                          and objective.device.type == "cpu")
        self._backend = backend
        #: model options of the compiled loops (CEINMS's variant, or the project's model)
        self._variant: dict[str, Any] = {}
        if self._compiled:
            data = objective.data
            if isinstance(objective, CeinmsObjective):  # as ceinms_activation: the filter
                # runs through the recorded history
                inputs = StiffInputs.of(data, emd_s=objective.emd_s)
                delayed, velocity = inputs.delayed, inputs.mtu_velocity_mps
                self._variant = {"percentage_change": objective.percentage_change,
                                 "clip_velocity": True, "n_before": inputs.n_before}
            else:
                delay = delay_samples(emd_s=objective.emd_s, dt_s=data.dt_s)
                delayed = _delayed(data.excitation, delay, data.excitation_before).numpy()
                velocity = time_derivative(data.mtu_length_m, dt_s=data.dt_s).numpy()
            self._signals = {
                "drive": np.ascontiguousarray(delayed - delayed[..., :1]),
                "initial": np.ascontiguousarray(delayed[..., 0]),
                "mtu_length_m": data.mtu_length_m.contiguous().numpy(),
                "mtu_velocity_mps": np.ascontiguousarray(velocity),
            }
            self._np = {"id": data.id_moment_nm.numpy(), "arm": data.moment_arm_m.numpy(),
                        "dof_w": objective.dof_weights.numpy(),
                        "time_w": objective.time_weights.numpy()}
        self._subsets: dict[bytes, dict[str, np.ndarray]] = {}
        # Per free kind: its field, entry values, free entries, slice of p, and MTU index.
        self._plan: list[tuple[str, np.ndarray, np.ndarray, slice, np.ndarray]] = []
        self._fixed_parameters = {"max_isometric_force_n": spec.muscles.max_isometric_force_n,
                                  "pennation_at_optimal_rad": spec.muscles.pennation_angle_rad}
        slices = spec.slices()
        for kind, field in _FIELDS.items():
            block = spec.blocks[kind]
            initial = np.array(block.initial, dtype=float)
            index = np.asarray(block.index)
            if kind in slices:
                self._plan.append((field, initial, np.asarray(block.free_mask, dtype=bool),
                                   slices[kind], index))
            else:
                self._fixed_parameters[field] = initial[index]
        self._p: np.ndarray | None = None
        self._state: dict[str, torch.Tensor] = {}
        self._arrays: dict[str, np.ndarray] = {}
        # The loss's per-muscle parts (see _refresh_sums) and which muscles they lag behind.
        self._stale = np.ones(n_mtus, dtype=bool)
        self._contributions = np.zeros(0)
        self._penalty_sums: dict[str, np.ndarray] = {}
        self.full_evaluations = 0
        self.partial_evaluations = 0

    def signals(self, p: np.ndarray) -> dict[str, torch.Tensor]:
        """Per-muscle outputs ``(trial, muscle, time)`` at physical ``p`` (force, normalised
        fibre length, tendon strain; every field of :class:`~pipeline.nms.ModelOutput` but the
        moments without the compiled loops), re-simulating only the muscles whose parameters
        changed. Raises the model's failures (``MODEL_FAILURES``)."""
        p = np.asarray(p, dtype=float)
        with torch.no_grad():
            try:
                if self._p is None:
                    muscles = np.arange(self._touches.shape[1])
                else:
                    changed = p != self._p
                    muscles = np.flatnonzero(self._touches[changed].any(axis=0))
                self._update(p, muscles)
            except MODEL_FAILURES:
                self._p = None  # the cached state may be half updated
                raise
        return self._state

    def __call__(self, p: np.ndarray) -> float:
        p = np.asarray(p, dtype=float)
        try:
            self.signals(p)
        except MODEL_FAILURES:
            return float("inf")
        with torch.no_grad():
            if self._compiled:
                total = self._loss(p)
            else:
                out = self._output()
                total = float(self.objective.terms_from_output(out, torch.as_tensor(p)).total)
        return total if np.isfinite(total) else float("inf")

    def _parameters(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """Per-MTU parameter arrays at ``p`` (numpy twin of ``Objective.muscle_parameters``)."""
        out = dict(self._fixed_parameters)
        for field, initial, free, part, index in self._plan:
            values = initial.copy()
            values[free] = p[part]
            out[field] = values[index]
        return out

    def _loss(self, p: np.ndarray) -> float:
        """``Objective.terms_from_output(...).total`` in numpy (a test keeps them equal)."""
        objective, arrays, state = self.objective, self._np, self._arrays
        if isinstance(objective, CeinmsObjective):
            residuals = objective._residuals_from(
                CeinmsSignals(state["force_n"], state["normalized_fiber_length"]),
                torch.as_tensor(p))[0]
            return float(residuals @ residuals)
        self._refresh_sums()
        moments = self._contributions.sum(axis=1)
        err2 = (arrays["id"] - moments) ** 2
        tracking = float(((err2 * arrays["dof_w"][None, :, None]).mean(axis=1)
                          * arrays["time_w"]).sum())
        penalty = sum(float(objective.penalties[key].weight * sums.sum())
                      for key, sums in self._penalty_sums.items())
        if objective.prior_weight > 0.0 and p.size:
            spec = objective.spec
            penalty += objective.prior_weight / p.size * float(
                (((p - spec.initial) / (spec.upper - spec.lower)) ** 2).sum())
        return tracking + penalty

    def _refresh_sums(self) -> None:
        """Bring the per-muscle parts of the loss up to date for the muscles simulated since the
        last loss: each muscle's moment contributions ``arm * force`` and its time-weighted
        penalty sums per trial. The loss then sums them, without recomputing the others."""
        stale = np.flatnonzero(self._stale)
        if stale.size == 0:
            return
        arrays, time_w = self._np, self._np["time_w"][:, None, :]
        everything = stale.size == self._stale.size
        take = slice(None) if everything else stale
        force = self._arrays["force_n"][:, take]
        contribution = arrays["arm"][:, take] * force[:, :, None, :]
        if everything:
            self._contributions = contribution
        else:
            self._contributions[:, take] = contribution
        for key, name in (("fiber_length", "normalized_fiber_length"),
                          ("tendon_strain", "tendon_strain")):
            rng = self.objective.penalties[key]
            x = self._arrays[name][:, take]
            dist = np.maximum(rng.lower - x, 0.0) ** 2 + np.maximum(x - rng.upper, 0.0) ** 2
            sums = (dist * time_w).sum(axis=2)  # (trial, muscle)
            if everything:
                self._penalty_sums[key] = sums
            else:
                self._penalty_sums[key][:, take] = sums
        self._stale[:] = False

    def _update(self, p: np.ndarray, muscles: np.ndarray) -> None:
        objective, data = self.objective, self.objective.data
        if muscles.size == 0:
            self._p = p.copy()
            return
        everything = muscles.size == self._touches.shape[1]
        if self._compiled:
            values = self._parameters(p)
            take = slice(None) if everything else muscles
            subset = {k: np.ascontiguousarray(v[take]) for k, v in values.items()}
            signals = self._signal_subset(muscles, everything)
            values_out = compiled.simulate_values(
                subset, drive=signals["drive"], initial=signals["initial"],
                mtu_length_m=signals["mtu_length_m"],
                mtu_velocity_mps=signals["mtu_velocity_mps"], dt_s=data.dt_s,
                tendon=objective.tendon, backend=self._backend, **self._variant)
            if not np.all(np.isfinite(values_out["force_n"])):
                raise FloatingPointError("the model is not finite at this point")
            # The loss needs only these (see _loss).
            needed = ("force_n", "normalized_fiber_length", "tendon_strain")
            if everything:
                # torch views of numpy arrays: a partial update below writes through them
                self._arrays = {name: values_out[name] for name in needed}
                self._state = {name: torch.from_numpy(self._arrays[name]) for name in needed}
                self._stale[:] = True
                self.full_evaluations += 1
            else:
                for name in needed:
                    self._arrays[name][:, muscles] = values_out[name]
                self._stale[muscles] = True
                self.partial_evaluations += 1
            self._p = p.copy()
            return
        full = objective.muscle_parameters(torch.as_tensor(p, dtype=torch.float64))
        if everything:
            out = simulate(full, data.excitation, data.mtu_length_m, data.moment_arm_m,
                           dt_s=data.dt_s, tendon=objective.tendon, emd_s=objective.emd_s,
                           excitation_before=data.excitation_before)
            self._state = {name: getattr(out, name).clone() for name in _PER_MUSCLE}
            self.full_evaluations += 1
        else:
            idx = torch.as_tensor(muscles, dtype=torch.long)
            subset_params = full.__class__(**{k: v[idx] for k, v in full.as_dict().items()})
            before = (None if data.excitation_before is None
                      else data.excitation_before[:, idx])
            out_t = simulate(subset_params, data.excitation[:, idx], data.mtu_length_m[:, idx],
                             data.moment_arm_m[:, idx], dt_s=data.dt_s, tendon=objective.tendon,
                             emd_s=objective.emd_s, excitation_before=before)
            for name in _PER_MUSCLE:
                self._state[name][:, idx] = getattr(out_t, name)
            self.partial_evaluations += 1
        self._p = p.copy()

    def _signal_subset(self, muscles: np.ndarray, everything: bool) -> dict[str, np.ndarray]:
        """The input signals of ``muscles`` (contiguous copies, kept: a move touches the same
        muscles every time it changes the same parameter)."""
        if everything:
            return self._signals
        key = muscles.tobytes()
        if key not in self._subsets:
            self._subsets[key] = {k: np.ascontiguousarray(v[:, muscles])
                                  for k, v in self._signals.items()}
        return self._subsets[key]

    def _output(self) -> ModelOutput:
        force = self._state["force_n"]
        moments = (self.objective.data.moment_arm_m * force.unsqueeze(2)).sum(dim=1)
        return ModelOutput(moments_nm=moments, **self._state)
